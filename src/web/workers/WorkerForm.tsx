import { type FormEvent, useState } from "react";
import { type WorkerProtocol, workerRegisterSchema } from "../../shared/workers.js";
import type { RouterOutputs } from "../trpc.js";

type WorkerView = RouterOutputs["workers"]["list"][number];

export interface WorkerFormValues {
  name: string;
  url: string;
  protocol: WorkerProtocol;
  capabilities: string[];
  maxConcurrency: number;
  /** Register: the token, if any. Edit: a new token; absent keeps the stored one. */
  token?: string;
  /** Edit only: remove the stored token. */
  clearToken?: boolean;
}

type Errors = Partial<Record<"name" | "url" | "capabilities" | "maxConcurrency" | "token", string>>;

/**
 * Register or edit a worker, checked with the server's own schema before it is sent; what the server
 * still refuses (a host outside the allowlist, a taken name) comes back as `serverError`.
 */
export function WorkerForm({
  worker,
  pending,
  serverError,
  onSubmit,
  onCancel,
}: {
  worker?: WorkerView;
  pending: boolean;
  serverError: string | null;
  onSubmit: (values: WorkerFormValues) => void;
  onCancel: () => void;
}) {
  const [name, setName] = useState(worker?.name ?? "");
  const [url, setUrl] = useState(worker?.url ?? "http://127.0.0.1:");
  const [protocol, setProtocol] = useState<WorkerProtocol>(worker?.protocol ?? "v1");
  // Capabilities that follow an agent's card are not the admin's: the field starts empty for them.
  const [caps, setCaps] = useState(
    worker ? (worker.capabilitiesFromCard ? "" : worker.capabilities.join(", ")) : "script",
  );
  const [concurrency, setConcurrency] = useState(String(worker?.maxConcurrency ?? 1));
  const [token, setToken] = useState("");
  const [clearToken, setClearToken] = useState(false);
  const [errors, setErrors] = useState<Errors>({});

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const capabilities = caps
      .split(/[\s,]+/)
      .map((c) => c.trim())
      .filter(Boolean);
    const n = concurrency.trim() === "" ? Number.NaN : Number(concurrency);
    const parsed = workerRegisterSchema.safeParse({
      name,
      url,
      protocol,
      capabilities,
      maxConcurrency: n,
      ...(token ? { token } : {}),
    });
    if (!parsed.success) {
      const next: Errors = {};
      for (const issue of parsed.error.issues) {
        const key = issue.path[0] as keyof Errors;
        if (key === "maxConcurrency" && Number.isNaN(n)) next.maxConcurrency = "Max concurrency must be a whole number";
        else next[key] ??= issue.message;
      }
      setErrors(next);
      return;
    }
    try {
      const u = new URL(parsed.data.url);
      if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error("scheme");
    } catch {
      setErrors({ url: "Worker URL must be an http:// or https:// address" });
      return;
    }
    setErrors({});
    onSubmit({ ...parsed.data, ...(clearToken ? { clearToken: true } : {}) });
  };

  const field = (key: keyof Errors) => ({
    "aria-invalid": errors[key] ? true : undefined,
    "aria-describedby": `wf-${key}-error`,
  });
  const errorLine = (key: keyof Errors) => (
    <p id={`wf-${key}-error`} className="field-error" data-field-error={`wf-${key}`}>
      {errors[key] ?? ""}
    </p>
  );

  return (
    <form onSubmit={submit} noValidate aria-label={worker ? `Edit worker ${worker.name}` : "Register a worker"}>
      <div className="field">
        <label htmlFor="wf-name">Name</label>
        <input id="wf-name" value={name} maxLength={100} onChange={(e) => setName(e.target.value)} {...field("name")} />
        {errorLine("name")}
      </div>
      <fieldset className="field">
        <legend>Protocol</legend>
        <label className="check">
          <input
            type="radio"
            name="wf-protocol"
            value="v1"
            checked={protocol === "v1"}
            onChange={() => setProtocol("v1")}
          />
          Agency worker (protocol v1)
        </label>
        <label className="check">
          <input
            type="radio"
            name="wf-protocol"
            value="a2a"
            checked={protocol === "a2a"}
            onChange={() => setProtocol("a2a")}
          />
          A2A agent (Agent2Agent, by its Agent Card)
        </label>
      </fieldset>
      <div className="field">
        <label htmlFor="wf-url">{protocol === "a2a" ? "Agent Card URL" : "URL"}</label>
        <input
          id="wf-url"
          className="mono"
          value={url}
          maxLength={500}
          onChange={(e) => setUrl(e.target.value)}
          {...field("url")}
        />
        <p className="hint">
          {protocol === "a2a"
            ? "…/.well-known/agent-card.json, or the agent's base URL. Its host, and the hosts its card names, must be in WORKER_ALLOWED_HOSTS."
            : "Its host must be in WORKER_ALLOWED_HOSTS (loopback by default)."}
        </p>
        {errorLine("url")}
      </div>
      <div className="field">
        <label htmlFor="wf-capabilities">Capabilities</label>
        <input
          id="wf-capabilities"
          className="mono"
          value={caps}
          onChange={(e) => setCaps(e.target.value)}
          {...field("capabilities")}
        />
        <p className="hint">
          Separated by commas or spaces; lower case a-z, 0-9, '.', '_', '-'.
          {protocol === "a2a" ? " Leave empty to take the agent's skills from its card (kept up to date)." : ""}
        </p>
        {errorLine("capabilities")}
      </div>
      <div className="field">
        <label htmlFor="wf-concurrency">Max concurrency</label>
        <input
          id="wf-concurrency"
          type="number"
          min={1}
          max={1000}
          value={concurrency}
          onChange={(e) => setConcurrency(e.target.value)}
          {...field("maxConcurrency")}
        />
        {errorLine("maxConcurrency")}
      </div>
      <div className="field">
        <label htmlFor="wf-token">{worker ? "New token" : "Token"}</label>
        <input
          id="wf-token"
          type="password"
          autoComplete="off"
          value={token}
          maxLength={500}
          disabled={clearToken}
          onChange={(e) => setToken(e.target.value)}
          {...field("token")}
        />
        <p className="hint">
          {worker
            ? worker.hasToken
              ? "A token is stored (never shown). Leave empty to keep it."
              : "No token is stored. Leave empty to keep it that way."
            : "Sent as Authorization: Bearer to the worker; stored encrypted. Optional."}
        </p>
        {errorLine("token")}
      </div>
      {worker?.hasToken ? (
        <label className="check">
          <input type="checkbox" checked={clearToken} onChange={(e) => setClearToken(e.target.checked)} />
          Remove the stored token
        </label>
      ) : null}
      <p className="field-error" role={serverError ? "alert" : undefined}>
        {serverError ? `The server refused: ${serverError}` : ""}
      </p>
      <div className="dialog-buttons">
        <button type="button" className="btn" onClick={onCancel}>
          Close
        </button>
        <button type="submit" className="btn btn-primary" disabled={pending}>
          {pending ? "Saving…" : worker ? "Save worker" : "Register worker"}
        </button>
      </div>
    </form>
  );
}

import { type FormEvent, useState } from "react";
import { tokenCreateInputSchema } from "../../shared/auth.js";
import { ErrorMessage, errorText, refusalText } from "../components/ErrorMessage.js";
import { Time } from "../components/Time.js";
import { useHasRole } from "../components/useMe.js";
import { type RouterOutputs, trpc } from "../trpc.js";

type Token = RouterOutputs["tokens"]["list"][number];

export default function TokensPage() {
  const isAdmin = useHasRole("admin");
  // Admins see everyone's tokens by default: they are the ones who revoke a leaked one.
  const [all, setAll] = useState(true);
  const showAll = isAdmin && all;
  const tokens = trpc.tokens.list.useQuery({ all: showAll });

  return (
    <div className="page">
      <div className="page-head">
        <h1>API tokens</h1>
      </div>
      <p className="muted">
        For automation: send <code>Authorization: Bearer &lt;token&gt;</code>. A token acts with its owner's role and is
        stored hashed, so it is shown only once, when it is created.
      </p>
      <CreateToken />
      {isAdmin ? (
        <label className="check">
          <input type="checkbox" checked={all} onChange={(e) => setAll(e.target.checked)} />
          Show every user's tokens
        </label>
      ) : null}
      {tokens.error ? <ErrorMessage title="Could not load the tokens:" error={tokens.error} /> : null}
      {tokens.isPending ? <p className="loading">Loading tokens…</p> : null}
      {tokens.data && tokens.data.length === 0 ? <p className="muted">No tokens.</p> : null}
      {tokens.data?.length ? (
        <div className="table-wrap">
          <table className="task-table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                {showAll ? <th scope="col">Owner</th> : null}
                <th scope="col">Starts with</th>
                <th scope="col">Created</th>
                <th scope="col">Expires</th>
                <th scope="col">Last used</th>
                <th scope="col">Status</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {tokens.data.map((t) => (
                <TokenRow key={t.id} token={t} showOwner={showAll} />
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </div>
  );
}

function TokenRow({ token: t, showOwner }: { token: Token; showOwner: boolean }) {
  const utils = trpc.useUtils();
  const revoke = trpc.tokens.revoke.useMutation({ onSuccess: () => utils.tokens.list.invalidate() });
  const expired = t.expiresAt !== null && t.expiresAt.getTime() < Date.now();
  return (
    <tr data-token={t.name}>
      <td>{t.name}</td>
      {showOwner ? <td>{t.username}</td> : null}
      <td>
        <code>{t.prefix}…</code>
      </td>
      <td>
        <Time value={t.createdAt} short />
      </td>
      <td>{t.expiresAt ? <Time value={t.expiresAt} short /> : <span className="muted">never</span>}</td>
      <td>{t.lastUsedAt ? <Time value={t.lastUsedAt} short /> : <span className="muted">never</span>}</td>
      <td>
        {t.revokedAt ? (
          <span className="tag" data-tone="bad">
            Revoked <Time value={t.revokedAt} short />
          </span>
        ) : expired ? (
          <span className="tag">Expired</span>
        ) : (
          <span className="tag" data-tone="ok">
            Active
          </span>
        )}
      </td>
      <td className="col-actions">
        {!t.revokedAt ? (
          <button
            type="button"
            className="btn btn-small btn-danger"
            disabled={revoke.isPending}
            onClick={() => revoke.mutate({ id: t.id })}
          >
            Revoke<span className="visually-hidden"> token {t.name}</span>
          </button>
        ) : null}
        {revoke.error ? (
          <span className="inline-error" role="alert">
            {errorText(revoke.error)}
          </span>
        ) : null}
      </td>
    </tr>
  );
}

function CreateToken() {
  const utils = trpc.useUtils();
  const [name, setName] = useState("");
  const [days, setDays] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [secret, setSecret] = useState<{ name: string; token: string } | null>(null);
  const [copied, setCopied] = useState<"yes" | "failed" | null>(null);
  const create = trpc.tokens.create.useMutation({
    onSuccess: async (t) => {
      setSecret({ name: t.name, token: t.token });
      setCopied(null);
      setName("");
      setDays("");
      await utils.tokens.list.invalidate();
    },
  });

  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.reset();
    const parsed = tokenCreateInputSchema.safeParse({
      name,
      ...(days.trim() ? { expiresInDays: Number(days) } : {}),
    });
    if (!parsed.success) {
      setError(
        parsed.error.issues
          .map((i) => (i.path[0] === "expiresInDays" ? "Expiry: whole days from 1 to 3650" : i.message))
          .join(" · "),
      );
      return;
    }
    setError(null);
    create.mutate(parsed.data);
  };

  const copy = async (text: string) => {
    try {
      await navigator.clipboard.writeText(text);
      setCopied("yes");
    } catch {
      setCopied("failed");
    }
  };

  return (
    <>
      <form className="form-section admin-form" onSubmit={submit} noValidate aria-label="Create a token">
        <h2 className="section-title">Create a token</h2>
        <div className="form-row">
          <div className="field">
            <label htmlFor="tk-name">Name</label>
            <input id="tk-name" value={name} maxLength={80} onChange={(e) => setName(e.target.value)} />
          </div>
          <div className="field">
            <label htmlFor="tk-days">Expires after (days)</label>
            <input
              id="tk-days"
              type="number"
              min={1}
              max={3650}
              value={days}
              placeholder="never"
              onChange={(e) => setDays(e.target.value)}
            />
          </div>
        </div>
        <p className="field-error" role={error || create.error ? "alert" : undefined}>
          {error ?? (create.error ? refusalText(create.error) : "")}
        </p>
        <div className="form-buttons">
          <button type="submit" className="btn btn-primary" disabled={create.isPending}>
            {create.isPending ? "Creating…" : "Create token"}
          </button>
        </div>
      </form>
      {secret ? (
        <div className="notice notice-warn token-secret" role="status">
          <p>
            <strong>Token “{secret.name}” created. Copy it now: it is not shown again.</strong>
          </p>
          <div className="secret-row">
            <input
              readOnly
              className="mono"
              aria-label="New token"
              value={secret.token}
              onFocus={(e) => e.currentTarget.select()}
            />
            <button type="button" className="btn" onClick={() => void copy(secret.token)}>
              Copy
            </button>
            <button type="button" className="btn" onClick={() => setSecret(null)}>
              Done
            </button>
          </div>
          {copied === "yes" ? <p className="muted">Copied to the clipboard.</p> : null}
          {copied === "failed" ? (
            <p className="inline-error">The browser refused the clipboard; select the token and copy it by hand.</p>
          ) : null}
        </div>
      ) : null}
    </>
  );
}

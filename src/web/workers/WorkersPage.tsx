import { useState } from "react";
import { Link } from "react-router-dom";
import { Dialog } from "../components/Dialog.js";
import { ErrorMessage } from "../components/ErrorMessage.js";
import { Time } from "../components/Time.js";
import { useHasRole } from "../components/useMe.js";
import { type RouterOutputs, trpc } from "../trpc.js";
import { DISPATCH_LABELS } from "./dispatch-labels.js";
import { type WorkerAction, WorkerActionDialog } from "./WorkerActionDialog.js";
import { WorkerForm, type WorkerFormValues } from "./WorkerForm.js";
import { BreakerStatus, HealthStatus } from "./WorkerStatus.js";

type WorkerView = RouterOutputs["workers"]["list"][number];

/** Breaker and health move on their own (failures, cool-downs, polling): the page asks again this often. */
const REFRESH_MS = 3_000;

/** What the worker's /health says of its scripts' confinement; only the unconfined and broken cases stand out. */
const SANDBOX_LABELS: Record<NonNullable<WorkerView["sandbox"]>, { label: string; help: string }> = {
  bubblewrap: {
    label: "Sandboxed",
    help: "Each script runs in a bubblewrap sandbox: its workspace only, no network by default, with limits.",
  },
  off: {
    label: "Unsandboxed",
    help: "WORKER_SANDBOX=off: scripts run with the worker's own user and can read and write whatever it can.",
  },
  unavailable: {
    label: "Sandbox unavailable",
    help: "The worker is set to sandbox scripts but bubblewrap cannot start there, so it refuses every script (apt-get install bubblewrap).",
  },
};

export default function WorkersPage() {
  const isAdmin = useHasRole("admin");
  const workers = trpc.workers.list.useQuery(undefined, { refetchInterval: REFRESH_MS });
  const [dialog, setDialog] = useState<{ kind: "register" } | { kind: "edit"; worker: WorkerView } | null>(null);

  return (
    <div className="page">
      <div className="page-head">
        <h1>Workers</h1>
        {isAdmin ? (
          <button type="button" className="btn btn-primary" onClick={() => setDialog({ kind: "register" })}>
            Register worker
          </button>
        ) : null}
      </div>
      {workers.error ? <ErrorMessage title="Could not load the workers:" error={workers.error} /> : null}
      {workers.isPending ? <p className="loading">Loading workers…</p> : null}
      {workers.data && workers.data.length === 0 ? (
        <div className="empty-state">
          <p>No workers are registered, so no task can run.</p>
          <p className="muted">
            Register one here, list them in WORKERS, or let the server start the reference worker
            (START_REFERENCE_WORKER=1).
          </p>
        </div>
      ) : null}
      <ul className="worker-list" aria-label="Workers">
        {workers.data?.map((w) => (
          <WorkerCard key={w.id} worker={w} isAdmin={isAdmin} onEdit={() => setDialog({ kind: "edit", worker: w })} />
        ))}
      </ul>
      {dialog?.kind === "register" ? <RegisterDialog onClose={() => setDialog(null)} /> : null}
      {dialog?.kind === "edit" ? <EditDialog worker={dialog.worker} onClose={() => setDialog(null)} /> : null}
    </div>
  );
}

function WorkerCard({ worker: w, isAdmin, onEdit }: { worker: WorkerView; isAdmin: boolean; onEdit: () => void }) {
  const utils = trpc.useUtils();
  const refresh = () => utils.workers.list.invalidate();
  const update = trpc.workers.update.useMutation({ onSuccess: refresh });
  const [confirmRemove, setConfirmRemove] = useState(false);
  const [action, setAction] = useState<WorkerAction | null>(null);
  const error = update.error;
  const full = w.inFlight >= w.maxConcurrency;

  return (
    <li className="worker-card" data-worker={w.name} aria-label={`Worker ${w.name}`}>
      <div className="worker-head">
        <h2 className="worker-name">
          <Link to={`/workers/${w.id}`}>{w.name}</Link>
        </h2>
        {!w.enabled ? <span className="tag tag-bad">Disabled</span> : null}
        {w.dispatch.state !== "active" ? (
          <span className="tag tag-bad" data-dispatch={w.dispatch.state}>
            {DISPATCH_LABELS[w.dispatch.state]}
          </span>
        ) : null}
        <span className="tag">{w.source === "config" ? "from configuration" : "registered"}</span>
        {w.protocol === "a2a" ? (
          <span className="tag" data-protocol="a2a" title="An Agent2Agent agent, called through its Agent Card">
            A2A
          </span>
        ) : null}
        <code className="muted worker-url">{w.url}</code>
      </div>
      <dl className="worker-facts">
        <div>
          <dt>Capabilities</dt>
          <dd>
            {w.capabilities.map((c) => (
              <code key={c} className="chip">
                {c}
              </code>
            ))}
          </dd>
        </div>
        <div>
          <dt>In flight</dt>
          <dd data-testid="in-flight" className={full ? "warn-text" : undefined}>
            {w.inFlight} / {w.maxConcurrency}
          </dd>
        </div>
        <div>
          <dt>Circuit breaker</dt>
          <dd>
            <BreakerStatus breaker={w.breaker} />
          </dd>
        </div>
        <div>
          <dt>Health</dt>
          <dd>
            <HealthStatus health={w.health} checkedAt={w.healthCheckedAt} />
          </dd>
        </div>
        {w.card ? (
          <div data-testid="agent-card">
            <dt>Agent Card</dt>
            <dd>
              <strong>{w.card.name}</strong>{" "}
              {w.card.version ? <span className="muted small">v{w.card.version}</span> : null}
              <span className="muted small">
                {" "}
                · {w.card.streaming ? "streams" : "polled (no streaming)"} · auth {w.card.auth}
                {w.capabilitiesFromCard ? " · capabilities from its skills" : ""}
                {w.cardFetchedAt ? (
                  <>
                    {" "}
                    · read <Time value={w.cardFetchedAt} short />
                  </>
                ) : null}
              </span>
            </dd>
          </div>
        ) : null}
        {w.sandbox ? (
          <div>
            <dt>Scripts</dt>
            <dd>
              <span
                className={w.sandbox === "bubblewrap" ? "sandbox-badge" : "sandbox-badge warn-text"}
                data-sandbox={w.sandbox}
                title={SANDBOX_LABELS[w.sandbox].help}
              >
                {SANDBOX_LABELS[w.sandbox].label}
              </span>
            </dd>
          </div>
        ) : null}
      </dl>
      {w.lastError ? (
        <p className="worker-error">
          <strong>Last error</strong> {w.lastErrorAt ? <Time value={w.lastErrorAt} short /> : null}:{" "}
          <span className="mono">{w.lastError}</span>
        </p>
      ) : null}
      {isAdmin ? (
        <div className="task-actions worker-actions">
          {w.breaker.state === "tripped" || w.breaker.state === "open" || w.breaker.state === "half_open" ? (
            <button type="button" className="btn btn-small" onClick={() => setAction("reset")}>
              Reset breaker<span className="visually-hidden"> of {w.name}</span>
            </button>
          ) : null}
          {w.breaker.state !== "tripped" ? (
            <button type="button" className="btn btn-small btn-danger" onClick={() => setAction("trip")}>
              Trip breaker<span className="visually-hidden"> of {w.name}</span>
            </button>
          ) : null}
          <button
            type="button"
            className="btn btn-small"
            disabled={update.isPending}
            onClick={() => update.mutate({ id: w.id, patch: { enabled: !w.enabled } })}
          >
            {w.enabled ? "Disable" : "Enable"}
            <span className="visually-hidden"> {w.name}</span>
          </button>
          <button type="button" className="btn btn-small" onClick={onEdit}>
            Edit<span className="visually-hidden"> {w.name}</span>
          </button>
          <button type="button" className="btn btn-small btn-danger" onClick={() => setConfirmRemove(true)}>
            Remove<span className="visually-hidden"> {w.name}</span>
          </button>
        </div>
      ) : null}
      {error ? (
        <p className="inline-error" role="alert">
          The server refused: {error.message}
        </p>
      ) : null}
      {confirmRemove ? <RemoveDialog worker={w} onClose={() => setConfirmRemove(false)} /> : null}
      {action ? (
        <WorkerActionDialog worker={w} action={action} onClose={() => setAction(null)} onDone={refresh} />
      ) : null}
    </li>
  );
}

function RegisterDialog({ onClose }: { onClose: () => void }) {
  const utils = trpc.useUtils();
  const register = trpc.workers.register.useMutation();
  return (
    <Dialog title="Register a worker" onClose={onClose}>
      {(close) => (
        <WorkerForm
          pending={register.isPending}
          serverError={register.error?.message ?? null}
          onCancel={close}
          onSubmit={({ clearToken: _ignored, ...values }: WorkerFormValues) =>
            register.mutate(values, {
              onSuccess: async () => {
                await utils.workers.list.invalidate();
                close();
              },
            })
          }
        />
      )}
    </Dialog>
  );
}

function EditDialog({ worker, onClose }: { worker: WorkerView; onClose: () => void }) {
  const utils = trpc.useUtils();
  const update = trpc.workers.update.useMutation();
  return (
    <Dialog title={`Edit worker ${worker.name}`} onClose={onClose}>
      {(close) => (
        <WorkerForm
          worker={worker}
          pending={update.isPending}
          serverError={update.error?.message ?? null}
          onCancel={close}
          onSubmit={({ token, clearToken, ...values }: WorkerFormValues) =>
            update.mutate(
              {
                id: worker.id,
                patch: { ...values, ...(clearToken ? { token: null } : token ? { token } : {}) },
              },
              {
                onSuccess: async () => {
                  await utils.workers.list.invalidate();
                  close();
                },
              },
            )
          }
        />
      )}
    </Dialog>
  );
}

function RemoveDialog({ worker, onClose }: { worker: WorkerView; onClose: () => void }) {
  const utils = trpc.useUtils();
  const remove = trpc.workers.remove.useMutation();
  return (
    <Dialog title={`Remove worker ${worker.name}?`} onClose={onClose}>
      {(close) => (
        <>
          <p>
            Tasks that need its capabilities go to other workers, or wait if there is none. A worker that is running
            attempts cannot be removed: disable it first and let them finish.
            {worker.source === "config" ? " It comes from configuration, so the next start registers it again." : ""}
          </p>
          <p className="field-error" role={remove.error ? "alert" : undefined}>
            {remove.error ? `The server refused: ${remove.error.message}` : ""}
          </p>
          <div className="dialog-buttons">
            <button type="button" className="btn" onClick={close}>
              Keep worker
            </button>
            <button
              type="button"
              className="btn btn-danger"
              disabled={remove.isPending}
              onClick={() =>
                remove.mutate(
                  { id: worker.id },
                  {
                    onSuccess: async () => {
                      await utils.workers.list.invalidate();
                      close();
                    },
                  },
                )
              }
            >
              Remove worker
            </button>
          </div>
        </>
      )}
    </Dialog>
  );
}

import { useState } from "react";
import { Link } from "react-router-dom";
import { Dialog } from "../components/Dialog.js";
import { ErrorMessage, errorText } from "../components/ErrorMessage.js";
import { useHasRole } from "../components/useMe.js";
import { type RouterOutputs, trpc } from "../trpc.js";
import { WebhookForm } from "./WebhookForm.js";

type Endpoint = RouterOutputs["webhooks"]["list"][number];
interface ShownSecret {
  name: string;
  secret: string;
  rotated: boolean;
}

export default function WebhooksPage() {
  const isAdmin = useHasRole("admin");
  const endpoints = trpc.webhooks.list.useQuery(undefined, { enabled: isAdmin });
  const [secret, setSecret] = useState<ShownSecret | null>(null);
  if (!isAdmin) {
    return (
      <div className="page page-narrow">
        <h1>Webhooks</h1>
        <ErrorMessage title="Managing webhooks needs the admin role." />
      </div>
    );
  }
  return (
    <div className="page">
      <div className="page-head">
        <h1>Webhooks</h1>
        <Link to="/admin/users" className="btn">
          Users
        </Link>
      </div>
      <p className="muted">
        The agency POSTs the events an endpoint subscribes to, signed the Standard Webhooks way (<code>webhook-id</code>
        , <code>webhook-timestamp</code>, <code>webhook-signature</code>), and retries with backoff until the endpoint
        answers 2xx. The URL's host must be in <code>WORKER_ALLOWED_HOSTS</code>.
      </p>
      <CreateEndpoint onSecret={setSecret} />
      {secret ? <SecretNotice secret={secret} onDone={() => setSecret(null)} /> : null}
      {endpoints.error ? <ErrorMessage title="Could not load the webhooks:" error={endpoints.error} /> : null}
      {endpoints.isPending ? <p className="loading">Loading webhooks…</p> : null}
      {endpoints.data && endpoints.data.length === 0 ? <p className="muted">No webhooks yet.</p> : null}
      {endpoints.data?.length ? (
        <div className="table-wrap">
          <table className="task-table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">URL</th>
                <th scope="col">Events</th>
                <th scope="col">Status</th>
                <th scope="col">Deliveries</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {endpoints.data.map((e) => (
                <EndpointRow key={e.id} endpoint={e} onSecret={setSecret} />
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </div>
  );
}

function CreateEndpoint({ onSecret }: { onSecret: (s: ShownSecret) => void }) {
  const utils = trpc.useUtils();
  const [formKey, setFormKey] = useState(0);
  const create = trpc.webhooks.create.useMutation({
    onSuccess: async (made) => {
      onSecret({ name: made.endpoint.name, secret: made.secret, rotated: false });
      setFormKey((k) => k + 1);
      await utils.webhooks.list.invalidate();
    },
  });
  return (
    <section className="form-section" aria-labelledby="wh-create-title">
      <h2 className="section-title" id="wh-create-title">
        Add an endpoint
      </h2>
      <WebhookForm
        key={formKey}
        submitLabel="Add webhook"
        pending={create.isPending}
        error={create.error}
        onSubmit={(values) => create.mutate(values)}
      />
    </section>
  );
}

function SecretNotice({ secret, onDone }: { secret: ShownSecret; onDone: () => void }) {
  const [copied, setCopied] = useState<"yes" | "failed" | null>(null);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(secret.secret);
      setCopied("yes");
    } catch {
      setCopied("failed");
    }
  };
  return (
    <div className="notice notice-warn token-secret" role="status">
      <p>
        <strong>
          {secret.rotated ? `New signing secret of “${secret.name}”.` : `Webhook “${secret.name}” added.`} Copy its
          signing secret now: it is not shown again.
        </strong>
      </p>
      <div className="secret-row">
        <input
          readOnly
          className="mono"
          aria-label="Signing secret"
          value={secret.secret}
          onFocus={(e) => e.currentTarget.select()}
        />
        <button type="button" className="btn" onClick={() => void copy()}>
          Copy
        </button>
        <button type="button" className="btn" onClick={onDone}>
          Done
        </button>
      </div>
      {copied === "yes" ? <p className="muted">Copied to the clipboard.</p> : null}
      {copied === "failed" ? (
        <p className="inline-error">The browser refused the clipboard; select the secret and copy it by hand.</p>
      ) : null}
    </div>
  );
}

function EndpointRow({ endpoint: e, onSecret }: { endpoint: Endpoint; onSecret: (s: ShownSecret) => void }) {
  const utils = trpc.useUtils();
  const refresh = () => utils.webhooks.list.invalidate();
  const [editing, setEditing] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const update = trpc.webhooks.update.useMutation({ onSuccess: refresh });
  const rotate = trpc.webhooks.rotateSecret.useMutation({
    onSuccess: (r) => onSecret({ name: r.endpoint.name, secret: r.secret, rotated: true }),
  });
  const remove = trpc.webhooks.remove.useMutation({ onSuccess: refresh });
  const failure = update.error ?? rotate.error ?? remove.error;
  return (
    <tr data-webhook={e.name}>
      <td>
        <Link to={`/admin/webhooks/${e.id}`}>{e.name}</Link>
        {e.format === "slack" ? <span className="tag">Slack</span> : null}
      </td>
      <td className="mono wrap">{e.url}</td>
      <td>
        <ul className="plain-list">
          {e.events.map((ev) => (
            <li key={ev}>
              <code>{ev}</code>
            </li>
          ))}
        </ul>
      </td>
      <td>
        {e.enabled ? (
          <span className="tag" data-tone="ok">
            Enabled
          </span>
        ) : (
          <span className="tag" data-tone="bad" title={e.disabledReason ?? undefined}>
            Disabled
          </span>
        )}
        {e.disabledReason ? <p className="muted small">{e.disabledReason}</p> : null}
      </td>
      <td>
        {e.deliveries.delivered} delivered, {e.deliveries.pending} pending, {e.deliveries.failed} failed
      </td>
      <td className="col-actions">
        <button type="button" className="btn btn-small" onClick={() => setEditing(true)}>
          Edit<span className="visually-hidden"> webhook {e.name}</span>
        </button>
        <button
          type="button"
          className="btn btn-small"
          disabled={update.isPending}
          onClick={() => update.mutate({ id: e.id, patch: { enabled: !e.enabled } })}
        >
          {e.enabled ? "Disable" : "Enable"}
          <span className="visually-hidden"> webhook {e.name}</span>
        </button>
        <button
          type="button"
          className="btn btn-small"
          disabled={rotate.isPending}
          onClick={() => rotate.mutate({ id: e.id })}
        >
          Rotate secret<span className="visually-hidden"> of webhook {e.name}</span>
        </button>
        <button type="button" className="btn btn-small btn-danger" onClick={() => setDeleting(true)}>
          Delete<span className="visually-hidden"> webhook {e.name}</span>
        </button>
        {failure ? (
          <span className="inline-error" role="alert">
            {errorText(failure)}
          </span>
        ) : null}
        {editing ? (
          <Dialog title={`Edit webhook ${e.name}`} wide onClose={() => setEditing(false)}>
            {(close) => (
              <WebhookForm
                initial={{ name: e.name, url: e.url, events: e.events, format: e.format }}
                submitLabel="Save webhook"
                pending={update.isPending}
                error={update.error}
                onCancel={close}
                onSubmit={(values) => update.mutate({ id: e.id, patch: values }, { onSuccess: close })}
              />
            )}
          </Dialog>
        ) : null}
        {deleting ? (
          <Dialog title={`Delete webhook ${e.name}?`} onClose={() => setDeleting(false)}>
            {(close) => (
              <>
                <p>Its delivery log goes with it; events are no longer sent to {e.url}.</p>
                <div className="form-buttons">
                  <button
                    type="button"
                    className="btn btn-danger"
                    disabled={remove.isPending}
                    onClick={() => remove.mutate({ id: e.id }, { onSuccess: close })}
                  >
                    Delete webhook
                  </button>
                  <button type="button" className="btn" onClick={close}>
                    Cancel
                  </button>
                </div>
              </>
            )}
          </Dialog>
        ) : null}
      </td>
    </tr>
  );
}

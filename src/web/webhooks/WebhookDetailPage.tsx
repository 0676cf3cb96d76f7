import { useParams } from "react-router-dom";
import type { WebhookDeliveryStatus } from "../../shared/webhooks.js";
import { Breadcrumb } from "../components/Breadcrumb.js";
import { ErrorMessage, errorText } from "../components/ErrorMessage.js";
import { Time } from "../components/Time.js";
import { useHasRole } from "../components/useMe.js";
import { type RouterOutputs, trpc } from "../trpc.js";

type Delivery = RouterOutputs["webhooks"]["deliveries"]["items"][number];

const PAGE = 50;
/** The log refreshes itself while deliveries are on their way. */
const REFRESH_MS = 2_000;

const STATUS_TONE: Record<WebhookDeliveryStatus, string | undefined> = {
  pending: undefined,
  delivering: undefined,
  delivered: "ok",
  failed: "bad",
};

export default function WebhookDetailPage() {
  const { id = "" } = useParams();
  const isAdmin = useHasRole("admin");
  const endpoint = trpc.webhooks.get.useQuery({ id }, { enabled: isAdmin, retry: false });
  const deliveries = trpc.webhooks.deliveries.useInfiniteQuery(
    { endpointId: id, limit: PAGE },
    {
      enabled: isAdmin && endpoint.isSuccess,
      getNextPageParam: (last) => last.nextCursor ?? undefined,
      refetchInterval: (q) =>
        q.state.data?.pages.some((p) => p.items.some((d) => d.status === "pending" || d.status === "delivering"))
          ? REFRESH_MS
          : false,
    },
  );
  const utils = trpc.useUtils();
  const sendTest = trpc.webhooks.sendTest.useMutation({
    onSuccess: () => utils.webhooks.deliveries.invalidate({ endpointId: id }),
  });
  if (!isAdmin) {
    return (
      <div className="page page-narrow">
        <h1>Webhook</h1>
        <ErrorMessage title="Webhooks need the admin role." />
      </div>
    );
  }
  const items = deliveries.data?.pages.flatMap((p) => p.items) ?? [];
  const e = endpoint.data;
  return (
    <div className="page">
      <Breadcrumb parent="Webhooks" to="/admin/webhooks" current={e?.name ?? "Webhook"} />
      <div className="page-head">
        <h1>{e ? `Webhook ${e.name}` : "Webhook"}</h1>
        {e ? (
          <button
            type="button"
            className="btn"
            disabled={sendTest.isPending}
            onClick={() => sendTest.mutate({ id: e.id })}
          >
            {sendTest.isPending ? "Sending…" : "Send test event"}
          </button>
        ) : null}
      </div>
      {sendTest.error ? (
        <p className="inline-error" role="alert">
          {errorText(sendTest.error)}
        </p>
      ) : null}
      {endpoint.error ? <ErrorMessage title="Could not load the webhook:" error={endpoint.error} /> : null}
      {e ? (
        <dl className="spec-grid">
          <dt>URL</dt>
          <dd className="mono hash">{e.url}</dd>
          <dt>Events</dt>
          <dd>{e.events.join(", ")}</dd>
          <dt>Payload</dt>
          <dd>{e.format === "slack" ? "Slack incoming webhook" : "Standard Webhooks JSON"}</dd>
          <dt>Status</dt>
          <dd>{e.enabled ? "Enabled" : `Disabled${e.disabledReason ? `: ${e.disabledReason}` : ""}`}</dd>
        </dl>
      ) : null}
      <h2 className="section-title">Delivery log</h2>
      {deliveries.error ? <ErrorMessage title="Could not load the deliveries:" error={deliveries.error} /> : null}
      {deliveries.isLoading ? <p className="loading">Loading deliveries…</p> : null}
      {deliveries.data && items.length === 0 ? (
        <p className="muted">No deliveries yet. Send a test event to try the endpoint.</p>
      ) : null}
      {items.length ? (
        <div className="table-wrap">
          <table className="task-table">
            <thead>
              <tr>
                <th scope="col">Event</th>
                <th scope="col">Created</th>
                <th scope="col">Status</th>
                <th scope="col">Tries</th>
                <th scope="col">Answer</th>
                <th scope="col">Duration</th>
                <th scope="col">Next try</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((d) => (
                <DeliveryRow key={d.id} delivery={d} />
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      {deliveries.hasNextPage ? (
        <button
          type="button"
          className="btn"
          disabled={deliveries.isFetchingNextPage}
          onClick={() => void deliveries.fetchNextPage()}
        >
          {deliveries.isFetchingNextPage ? "Loading…" : "Load more"}
        </button>
      ) : null}
    </div>
  );
}

function DeliveryRow({ delivery: d }: { delivery: Delivery }) {
  const utils = trpc.useUtils();
  const replay = trpc.webhooks.replay.useMutation({
    onSuccess: () => utils.webhooks.deliveries.invalidate({ endpointId: d.endpointId }),
  });
  const answer = [d.responseStatus !== null ? `HTTP ${d.responseStatus}` : null, d.error].filter(Boolean).join(" · ");
  return (
    <tr data-delivery={d.id} data-status={d.status}>
      <td>
        <code>{d.eventType}</code>
        {d.replayOf ? <span className="tag">Replay</span> : null}
      </td>
      <td>
        <Time value={d.createdAt} short />
      </td>
      <td>
        <span className="tag" data-tone={STATUS_TONE[d.status]}>
          {d.status}
        </span>
      </td>
      <td>{d.attempts}</td>
      <td className="wrap">
        {answer || <span className="muted">none yet</span>}
        {d.responseBody ? (
          <details>
            <summary>Response body</summary>
            <pre className="mono small">{d.responseBody.slice(0, 1000)}</pre>
          </details>
        ) : null}
      </td>
      <td>{d.durationMs !== null ? `${d.durationMs} ms` : ""}</td>
      <td>{d.nextAttemptAt ? <Time value={d.nextAttemptAt} short /> : ""}</td>
      <td className="col-actions">
        <button
          type="button"
          className="btn btn-small"
          disabled={replay.isPending}
          onClick={() => replay.mutate({ deliveryId: d.id })}
        >
          Replay<span className="visually-hidden"> {d.eventType}</span>
        </button>
        {replay.error ? (
          <span className="inline-error" role="alert">
            {errorText(replay.error)}
          </span>
        ) : null}
      </td>
    </tr>
  );
}

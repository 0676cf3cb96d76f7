import { formatDuration } from "../lib/format.js";
import { trpc } from "../trpc.js";

const REFRESH_MS = 10_000;

/** Green when the server and its database answer, amber when the database does not, red when the server does not. */
export function HealthBadge() {
  const health = trpc.system.health.useQuery(undefined, {
    refetchInterval: REFRESH_MS,
    refetchIntervalInBackground: false,
    retry: false,
    staleTime: 0,
  });

  let tone: "ok" | "warn" | "bad" | "unknown";
  let label: string;
  let details: string[];
  if (health.isError && !health.isFetching) {
    tone = "bad";
    label = "Unreachable";
    details = [`The server did not answer: ${health.error.message}`];
  } else if (!health.data) {
    tone = "unknown";
    label = "Checking";
    details = ["Asking the server for its health…"];
  } else {
    const h = health.data;
    tone = h.status === "ok" ? "ok" : "warn";
    label = h.status === "ok" ? "Healthy" : "Degraded";
    details = [
      `Version ${h.version}, up ${formatDuration(h.uptimeSec)}, Node ${h.node}`,
      `Database: ${h.database.kind}, ${h.database.ok ? "ok" : "not ready"}` +
        (h.database.latencyMs != null ? `, ${h.database.latencyMs} ms round trip` : ""),
      ...(h.database.reason ? [h.database.reason] : []),
    ];
  }

  return (
    <button
      type="button"
      className="status-pill has-tip"
      data-tone={tone}
      aria-describedby="health-tip"
      // Checking again at once is what an operator wants after fixing something.
      onClick={() => void health.refetch()}
    >
      <span className="dot" aria-hidden="true" />
      <span>
        <span className="visually-hidden">Server health: </span>
        {label}
      </span>
      <span className="tip" role="tooltip" id="health-tip">
        {details.map((d) => (
          <span key={d} className="tip-line">
            {d}
          </span>
        ))}
      </span>
    </button>
  );
}

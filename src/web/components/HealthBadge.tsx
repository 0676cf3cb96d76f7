import { useEffect } from "react";
import { formatDuration } from "../lib/format.js";
import { liveConnection, trpc } from "../trpc.js";
import { errorText } from "./ErrorMessage.js";

const REFRESH_MS = 10_000;

/**
 * Green when the server, its database and at least one enabled worker are healthy; amber when every enabled
 * worker is unusable (breaker open or health down); red when the database is not ready or the server does not answer.
 */
export function HealthBadge() {
  const health = trpc.system.health.useQuery(undefined, {
    refetchInterval: REFRESH_MS,
    refetchIntervalInBackground: false,
    retry: false,
    staleTime: 0,
  });
  // The live connection dropping or coming back is news about the server: ask at once rather than at the next
  // poll, so this badge and the connection badge change together.
  const { refetch } = health;
  useEffect(() => {
    let last = liveConnection.get().status;
    return liveConnection.subscribe(() => {
      const now = liveConnection.get().status;
      if ((now === "connected") !== (last === "connected")) void refetch();
      last = now;
    });
  }, [refetch]);

  let tone: "ok" | "warn" | "bad" | "unknown";
  let label: string;
  let details: string[];
  if (health.isError && !health.isFetching) {
    tone = "bad";
    label = "Unreachable";
    details = [`The server did not answer: ${errorText(health.error)}`];
  } else if (!health.data) {
    tone = "unknown";
    label = "Checking";
    details = ["Asking the server for its health…"];
  } else if (!("workers" in health.data)) {
    // The short answer anonymous callers get (and a session that must change its password first).
    tone = health.data.ready ? "ok" : "bad";
    label = health.data.ready ? "Ready" : "Not ready";
    details = [health.data.ready ? "The server is ready." : "The server is not ready."];
  } else {
    const h = health.data;
    const enabled = h.workers.filter((w) => w.enabled);
    const usable = enabled.filter((w) => w.breaker.state === "closed" && w.health !== "down");
    tone = !h.database.ok ? "bad" : h.status === "ok" ? "ok" : "warn";
    label = !h.database.ok ? "Database down" : h.status === "ok" ? "Healthy" : "Degraded";
    details = [
      enabled.length === 0
        ? "No worker is enabled"
        : `Workers: ${usable.length} of ${enabled.length} usable` +
          (usable.length < enabled.length
            ? ` (${enabled
                .filter((w) => !usable.includes(w))
                .map(
                  (w) =>
                    `${w.name}: ${w.breaker.state === "closed" ? `health ${w.health}` : `breaker ${w.breaker.state}`}`,
                )
                .join(", ")})`
            : ""),
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

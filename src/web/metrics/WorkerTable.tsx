import type { WorkerBreakerState, WorkerFigures } from "../../shared/metrics.js";
import { formatMs, formatPercent } from "./format.js";

const BREAKER_LABELS: Record<WorkerBreakerState, string> = {
  closed: "Closed",
  open: "Open",
  half_open: "Half-open",
  tripped: "Tripped by hand",
};

/** Each worker's load and health from the latest snapshot. */
export function WorkerTable({ workers, windowMs }: { workers: WorkerFigures[]; windowMs: number }) {
  if (workers.length === 0) {
    return <p className="muted">No workers are registered, so no task can run.</p>;
  }
  const windowMin = Math.round(windowMs / 60_000);
  return (
    <div className="table-wrap">
      <table className="task-table metrics-workers">
        <thead>
          <tr>
            <th scope="col">Worker</th>
            <th scope="col">In flight</th>
            <th scope="col">Breaker</th>
            <th scope="col">
              Error rate <span className="muted small">({windowMin} min)</span>
            </th>
            <th scope="col">
              p95 execution <span className="muted small">({windowMin} min)</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {workers.map((w) => (
            <tr key={w.id} data-worker={w.name}>
              <th scope="row">
                {w.name}
                {!w.enabled ? <span className="tag tag-bad">Disabled</span> : null}
              </th>
              <td className={w.inFlight >= w.maxConcurrency ? "warn-text" : undefined}>
                {w.inFlight} / {w.maxConcurrency}
              </td>
              <td>
                <span className="breaker-badge" data-breaker={w.breaker}>
                  {BREAKER_LABELS[w.breaker]}
                </span>
              </td>
              <td>
                {formatPercent(w.errorRate)}
                {w.attempts ? (
                  <span className="muted small">
                    {" "}
                    ({w.failed} of {w.attempts} attempts)
                  </span>
                ) : (
                  <span className="muted small"> (no attempt ended)</span>
                )}
              </td>
              <td>{formatMs(w.p95Ms)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

import type { TaskEventDto } from "../../shared/task-events.js";
import { formatDuration } from "../lib/format.js";
import type { RouterOutputs } from "../trpc.js";
import { clockTime } from "./Logs.js";
import "./task-history.css";

type TaskDetail = RouterOutputs["tasks"]["get"];

export function durationText(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return formatDuration(Math.round(ms / 1000));
}

interface Row {
  number: number;
  queuedAt: Date;
  startedAt: Date;
  /** Null while it runs: the bar reaches `now`. */
  finishedAt: Date | null;
  tries: number;
  /** The failed tries, from the attempt_try_failed events the timeline has loaded. */
  failedTries: { at: Date; try: number; error: string }[];
}

/**
 * Attempts on the task's time axis: the wait in the queue (grey) and the run (blue) of each, a mark for
 * each failed try. A table under it says the same in words (the chart is hidden from screen readers).
 */
export function Waterfall({
  task,
  events,
  now = new Date(),
}: {
  task: TaskDetail;
  events: readonly TaskEventDto[];
  now?: Date;
}) {
  if (!task.attempts.length) return null;
  const rows: Row[] = task.attempts.map((a) => ({
    number: a.number,
    queuedAt: a.queuedAt,
    startedAt: a.startedAt,
    finishedAt: a.finishedAt,
    tries: a.tries,
    failedTries: events
      .filter((e) => e.type === "attempt_try_failed" && e.data.attempt === a.number)
      .map((e) => ({
        at: e.createdAt,
        try: typeof e.data.try === "number" ? e.data.try : 0,
        error: typeof e.data.error === "string" ? e.data.error : "",
      })),
  }));
  const start = Math.min(task.createdAt.getTime(), ...rows.map((r) => r.queuedAt.getTime()));
  const end = Math.max(...rows.map((r) => (r.finishedAt ?? now).getTime()), start + 1);
  const span = end - start;
  const pct = (t: number) => `${(((t - start) / span) * 100).toFixed(3)}%`;
  const width = (from: number, to: number) => `${((Math.max(0, to - from) / span) * 100).toFixed(3)}%`;
  return (
    <section className="waterfall" aria-labelledby="waterfall-title" data-testid="waterfall">
      <h3 id="waterfall-title" className="section-title">
        Waterfall: {rows.length} {rows.length === 1 ? "attempt" : "attempts"} over {durationText(span)}
      </h3>
      <ol className="waterfall-rows" aria-hidden="true">
        {rows.map((r) => {
          const s = r.startedAt.getTime();
          const f = (r.finishedAt ?? now).getTime();
          return (
            <li key={r.number} className="waterfall-row" data-attempt={r.number}>
              <span className="waterfall-label">
                #{r.number} {durationText(f - s)}
              </span>
              <span className="waterfall-track">
                <span
                  className="waterfall-bar"
                  data-part="queued"
                  style={{ left: pct(r.queuedAt.getTime()), width: width(r.queuedAt.getTime(), s) }}
                />
                <span className="waterfall-bar" data-part="run" style={{ left: pct(s), width: width(s, f) }} />
                {r.failedTries.map((t) => (
                  <span
                    key={`${t.try}-${t.at.getTime()}`}
                    className="waterfall-tick"
                    style={{ left: pct(t.at.getTime()) }}
                  />
                ))}
              </span>
            </li>
          );
        })}
      </ol>
      <details className="waterfall-table">
        <summary>The waterfall as a table</summary>
        <div className="table-wrap">
          <table className="task-table">
            <caption className="visually-hidden">Attempts with their times and durations</caption>
            <thead>
              <tr>
                <th scope="col">Attempt</th>
                <th scope="col">Waited in queue</th>
                <th scope="col">Started</th>
                <th scope="col">Ran for</th>
                <th scope="col">Tries</th>
                <th scope="col">Failed tries</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={r.number} data-attempt={r.number}>
                  <td>#{r.number}</td>
                  <td>{durationText(r.startedAt.getTime() - r.queuedAt.getTime())}</td>
                  <td>
                    <time dateTime={r.startedAt.toISOString()}>{clockTime(r.startedAt)}</time>
                  </td>
                  <td>
                    {durationText((r.finishedAt ?? now).getTime() - r.startedAt.getTime())}
                    {r.finishedAt ? "" : " (running)"}
                  </td>
                  <td>{r.tries}</td>
                  <td className="wrap">
                    {r.failedTries.length
                      ? r.failedTries.map((t) => `try ${t.try} at ${clockTime(t.at)}: ${t.error}`).join("; ")
                      : "none"}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </details>
    </section>
  );
}

import { Link } from "react-router-dom";
import type { TaskEventDto } from "../../shared/task-events.js";
import { Time } from "../components/Time.js";
import { formatDuration } from "../lib/format.js";
import type { RouterOutputs } from "../trpc.js";
import { AttemptUsageFacts } from "../usage/UsageFacts.js";
import { AttemptMore, AttemptOrigin } from "./AttemptHistory.js";
import { FindingList } from "./Findings.js";
import { VerdictBadge } from "./VerdictBadge.js";

type TaskDetail = RouterOutputs["tasks"]["get"];
type Attempt = TaskDetail["attempts"][number];

function duration(a: Attempt): string {
  if (!a.startedAt) return "—";
  const end = a.finishedAt ?? null;
  if (!end) return "running";
  const ms = end.getTime() - a.startedAt.getTime();
  return ms < 1000 ? `${ms} ms` : formatDuration(Math.round(ms / 1000));
}

/**
 * How many tries an attempt has made. A finished attempt stores its count; a running one stores it only at its
 * end, so while it runs the count comes from its failed-try events (the same ones the timeline shows).
 */
function triesText(a: Attempt, events: readonly TaskEventDto[]): string {
  if (a.finishedAt || a.state !== "running") return String(a.tries);
  const failed = events.filter((e) => e.type === "attempt_try_failed" && e.data.attempt === a.number);
  const last = failed.at(-1)?.data;
  const current = failed.reduce((n, e) => Math.max(n, Number(e.data.try) || 0), 0) + 1;
  return typeof last?.of === "number" ? `try ${current} of ${last.of}` : `try ${current}`;
}

export function Attempts({ task, events }: { task: TaskDetail; events: readonly TaskEventDto[] }) {
  if (!task.attempts.length) {
    return <p className="muted">No attempt yet: the task has not been dispatched to a worker.</p>;
  }
  return (
    <ol className="attempt-list" aria-label="Attempts">
      {[...task.attempts].reverse().map((a) => (
        <li key={a.id} className="attempt" data-attempt={a.number}>
          <div className="attempt-head">
            <h3>Attempt {a.number}</h3>
            <span className="tag">{a.state}</span>
            {a.verdict ? <VerdictBadge verdict={a.verdict} /> : null}
          </div>
          <AttemptOrigin attempt={a} />
          <dl className="spec-grid attempt-facts">
            <div>
              <dt>Worker</dt>
              <dd>{a.worker ? <Link to="/workers">{a.worker.name}</Link> : <span className="muted">none yet</span>}</dd>
            </div>
            <div>
              <dt>Queued</dt>
              <dd>
                <Time value={a.queuedAt} />
              </dd>
            </div>
            <div>
              <dt>Started</dt>
              <dd>
                <Time value={a.startedAt} />
              </dd>
            </div>
            <div>
              <dt>Finished</dt>
              <dd>
                <Time value={a.finishedAt} />
              </dd>
            </div>
            <div>
              <dt>Duration</dt>
              <dd>{duration(a)}</dd>
            </div>
            <div>
              <dt>Tries</dt>
              <dd>{triesText(a, events)}</dd>
            </div>
            <AttemptUsageFacts usage={a.usage} />
          </dl>
          {a.summary ? (
            <p>
              <strong>Worker's summary:</strong> {a.summary}
            </p>
          ) : null}
          {a.error ? (
            <div className="notice notice-error">
              <strong>Error:</strong> <span className="mono">{a.error}</span>
            </div>
          ) : null}
          {a.critique ? (
            <details className="critique">
              <summary>
                Critique it was given, from attempt {a.critique.fromAttempt} ({a.critique.findings.length}{" "}
                {a.critique.findings.length === 1 ? "finding" : "findings"})
              </summary>
              <p className="description">{a.critique.rationale}</p>
              <FindingList findings={a.critique.findings} />
            </details>
          ) : null}
          <AttemptMore taskId={task.id} attempt={a} />
        </li>
      ))}
    </ol>
  );
}

import { Link } from "react-router-dom";
import { Time } from "../components/Time.js";
import { formatDuration } from "../lib/format.js";
import type { RouterOutputs } from "../trpc.js";
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

export function Attempts({ task }: { task: TaskDetail }) {
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
              <dd>{a.tries}</dd>
            </div>
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
        </li>
      ))}
    </ol>
  );
}

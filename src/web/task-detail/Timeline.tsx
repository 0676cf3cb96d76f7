import { Link } from "react-router-dom";
import type { TaskEventDto } from "../../shared/task-events.js";
import { ErrorMessage } from "../components/ErrorMessage.js";
import { StateBadge } from "../components/StateBadge.js";
import { formatDateTime } from "../lib/format.js";
import type { EventLog } from "./useEventLog.js";
import { asVerdict, isVerdictRationale } from "./VerdictBadge.js";

const TYPE_LABELS: Record<string, string> = {
  created: "Created",
  state_changed: "State changed",
  attempt_try_failed: "Try failed",
  attempt_lost: "Attempt lost",
  attempt_handed_back: "Attempt handed back",
  attempt_reattached: "Attempt re-attached",
  worker_breaker: "Worker breaker",
  input_required: "Agent asks",
  input_answered: "Answered",
};

function detailOf(e: TaskEventDto): string | null {
  const d = e.data;
  const s = (v: unknown) => (typeof v === "string" || typeof v === "number" ? String(v) : "?");
  if (e.type === "attempt_try_failed") return `Try ${s(d.try)} of ${s(d.of)} on ${s(d.worker)}: ${s(d.error)}`;
  if (e.type === "attempt_lost") return `Attempt ${s(d.attempt)}: ${s(d.error)}`;
  if (e.type === "attempt_handed_back") return `Attempt ${s(d.attempt)}: ${s(d.reason)}`;
  if (e.type === "attempt_reattached") return `Attempt ${s(d.attempt)} on ${s(d.worker)}: ${s(d.reason)}`;
  if (e.type === "worker_breaker") return `${s(d.worker)}: ${s(d.from)} → ${s(d.to)} (${s(d.reason)})`;
  if (e.type === "input_required") return `Attempt ${s(d.attempt)} (${s(d.kind)}): ${s(d.question)}`;
  if (e.type === "input_answered") return `Attempt ${s(d.attempt)}, by ${e.actor}: ${s(d.text)}`;
  if (e.type === "state_changed" && d.name === "retry") return retryDetail(e);
  return null;
}

const int = (v: unknown): number | null => (typeof v === "number" && Number.isInteger(v) ? v : null);

/**
 * A move back to the queue for another attempt: the operator's retry (who, which attempt) or the council's
 * automatic re-dispatch (the n-th of the task's budget), with what is left of that budget.
 */
function retryDetail(e: TaskEventDto): string | null {
  const d = e.data;
  if (d.automatic === true) {
    const n = int(d.redispatch);
    const of = int(d.of);
    const next = int(d.attempt);
    if (n === null || of === null) return null;
    return `${next !== null ? `Attempt ${next + 1}: a` : "A"}utomatic re-dispatch after changes requested (${n} of ${of}); automatic re-dispatches left: ${Math.max(0, of - n)} of ${of}`;
  }
  const retry = d.retry as { attempt?: unknown; by?: unknown } | undefined;
  const budget = d.autoRedispatch as { left?: unknown; max?: unknown } | undefined;
  const attempt = int(retry?.attempt);
  const left = int(budget?.left);
  const max = int(budget?.max);
  const by = typeof retry?.by === "string" ? retry.by : e.actor;
  const head = attempt !== null ? `Attempt ${attempt} — retried by ${by}` : `Retried by ${by}`;
  return left !== null && max !== null
    ? `${head}; automatic re-dispatches left: ${left} of ${max} (a retry does not refill them)`
    : head;
}

function reasonOf(e: TaskEventDto): string | null {
  const r = e.data.reason;
  return typeof r === "string" && r ? r : null;
}

/**
 * The task's decisions and faults (worker output has its own tab), oldest first; earlier ones on demand.
 * `rationale` is the current verdict's: the council's decision points to the Verdict tab rather than repeating
 * it (an earlier attempt's verdict keeps its own rationale, folded).
 */
export function Timeline({ log, rationale }: { log: EventLog; rationale: string | null }) {
  const { events } = log;
  if (log.first.error) return <ErrorMessage title="Could not load the task's events:" error={log.first.error} />;
  if (log.first.isPending) return <p className="loading">Loading events…</p>;
  if (!events.length) return <p className="muted">No events yet.</p>;
  return (
    <>
      <EarlierButton log={log} what="events" />
      <TimelineList events={events} rationale={rationale} />
    </>
  );
}

/** "Load earlier …" above a log read newest first, with its own error. */
export function EarlierButton({ log, what }: { log: EventLog; what: string }) {
  if (!log.hasOlder && !log.olderError) return null;
  return (
    <div className="load-earlier">
      {log.olderError ? (
        <ErrorMessage title={`Could not load earlier ${what}:`} error={log.olderError as { message: string }} />
      ) : null}
      {log.hasOlder ? (
        <button
          type="button"
          className="btn btn-small"
          disabled={log.loadingOlder}
          onClick={() => void log.loadOlder()}
        >
          {log.loadingOlder ? "Loading…" : `Load earlier ${what}`}
        </button>
      ) : null}
    </div>
  );
}

function TimelineList({ events, rationale }: { events: TaskEventDto[]; rationale: string | null }) {
  return (
    <ol className="timeline" aria-label="Task events">
      {events.map((e) => {
        const reason = reasonOf(e);
        const detail = detailOf(e);
        const verdict = e.actor === "council" ? asVerdict(e.data.verdict) : null;
        const current = verdict !== null && isVerdictRationale(reason, rationale);
        return (
          <li key={e.seq} className="timeline-item" data-event-type={e.type}>
            <time dateTime={e.createdAt.toISOString()} className="timeline-time">
              {formatDateTime(e.createdAt)}
            </time>
            <div className="timeline-body">
              <div className="timeline-head">
                <strong className="event-type">{TYPE_LABELS[e.type] ?? e.type}</strong>
                {e.fromState || e.toState ? (
                  <span className="transition">
                    {e.fromState ? <StateBadge state={e.fromState} /> : null}
                    {e.fromState && e.toState ? <span className="visually-hidden"> to </span> : null}
                    {e.fromState && e.toState ? <span aria-hidden="true"> → </span> : null}
                    {e.toState ? <StateBadge state={e.toState} /> : null}
                  </span>
                ) : null}
                <span className="muted">by {e.actor}</span>
              </div>
              {current ? (
                <p className="timeline-reason">
                  <Link to={{ search: "?tab=verdict" }} replace>
                    The council's rationale is on the Verdict tab
                  </Link>
                </p>
              ) : reason && verdict ? (
                <details className="timeline-reason">
                  <summary>The council's rationale for attempt {String(e.data.attempt ?? "?")}</summary>
                  <p className="description">{reason}</p>
                </details>
              ) : reason ? (
                <p className="timeline-reason">Reason: {reason}</p>
              ) : null}
              {detail ? <p className="timeline-reason mono">{detail}</p> : null}
            </div>
          </li>
        );
      })}
    </ol>
  );
}

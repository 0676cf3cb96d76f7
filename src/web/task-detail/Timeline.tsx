import type { TaskEventDto } from "../../shared/task-events.js";
import { StateBadge } from "../components/StateBadge.js";
import { formatDateTime } from "../lib/format.js";

const TYPE_LABELS: Record<string, string> = {
  created: "Created",
  state_changed: "State changed",
};

function reasonOf(e: TaskEventDto): string | null {
  const r = e.data.reason;
  return typeof r === "string" && r ? r : null;
}

export function Timeline({ events }: { events: TaskEventDto[] }) {
  if (!events.length) return <p className="muted">No events yet.</p>;
  return (
    <ol className="timeline" aria-label="Task events">
      {events.map((e) => {
        const reason = reasonOf(e);
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
              {reason ? <p className="timeline-reason">Reason: {reason}</p> : null}
            </div>
          </li>
        );
      })}
    </ol>
  );
}

import { useState } from "react";
import { Link } from "react-router-dom";
import { type AuditEntryDto, SYSTEM_ACTOR_LABEL } from "../../shared/audit.js";
import { Time } from "./Time.js";
import { TimeZoneToggle } from "./TimeZoneToggle.js";

/** A value in the row is cut to this many characters; "Show all" shows it whole. */
const MAX_VALUE = 80;

function show(value: unknown, max: number): string {
  if (value === undefined) return "—";
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

const asRecord = (v: unknown): Record<string, unknown> | null =>
  v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : null;

/** What changed, member by member: `role: operator → admin`; a side without members is shown whole. */
export function changeSummary(before: unknown, after: unknown, max = MAX_VALUE): string[] {
  const b = asRecord(before);
  const a = asRecord(after);
  if (!b && !a) {
    if (before == null && after == null) return [];
    return [`${show(before ?? undefined, max)} → ${show(after ?? undefined, max)}`];
  }
  const keys = [...new Set([...Object.keys(b ?? {}), ...Object.keys(a ?? {})])];
  const lines: string[] = [];
  for (const k of keys) {
    const was = b?.[k];
    const now = a?.[k];
    if (JSON.stringify(was) === JSON.stringify(now)) continue;
    if (!b) lines.push(`${k}: ${show(now, max)}`);
    else if (!a) lines.push(`${k}: ${show(was, max)} (removed)`);
    else lines.push(`${k}: ${show(was, max)} → ${show(now, max)}`);
  }
  return lines;
}

/** Who made the entry, in one form wherever an actor is shown: the agency's own entries as "Agency (system)". */
export function AuditActor({ kind, id }: { kind: string; id: string }) {
  if (kind === "system") {
    return (
      <span>
        <strong>{SYSTEM_ACTOR_LABEL}</strong> <span className="muted">{id}</span>
      </span>
    );
  }
  return (
    <span>
      <span className="muted">{kind}</span> {id}
    </span>
  );
}

const RESOURCE_NOUNS: Record<string, string> = {
  task: "task",
  worker: "worker",
  user: "user",
  api_token: "API token",
  saved_view: "saved view",
};

const shortId = (id: string) => (id.length > 12 ? `${id.slice(0, 8)}…` : id);

function Resource({ type, id, name }: { type: string; id: string | null; name: string | null }) {
  const noun = RESOURCE_NOUNS[type] ?? type;
  if (!id) return <span>{noun}</span>;
  const label = name ?? shortId(id);
  if (type === "task") {
    return (
      <span>
        <span className="muted">{noun}</span> <Link to={`/tasks/${id}`}>{label}</Link>
      </span>
    );
  }
  if (type === "worker") {
    return (
      <span title={id}>
        <span className="muted">{noun}</span> <Link to="/workers">{label}</Link>
      </span>
    );
  }
  return (
    <span title={id}>
      <span className="muted">{noun}</span> {name ? <span>{name}</span> : <code>{label}</code>}
    </span>
  );
}

/** More than this many lines, or a line cut short, and the change is folded behind "Show all". */
const FOLDED_LINES = 3;

/** What changed: a few lines cut short in the row, the whole of it (full reasons, long values) on demand. */
function Change({ entryId, before, after }: { entryId: string; before: unknown; after: unknown }) {
  const [open, setOpen] = useState(false);
  const short = changeSummary(before, after);
  const full = changeSummary(before, after, Number.POSITIVE_INFINITY);
  if (!full.length) return <span className="muted">—</span>;
  const folds = full.length > FOLDED_LINES || short.some((line, i) => line !== full[i]);
  const lines = open ? full : short.slice(0, FOLDED_LINES);
  const listId = `audit-change-${entryId}`;
  return (
    <div>
      <ul className={open ? "plain-list change-list change-full" : "plain-list change-list"} id={listId}>
        {lines.map((line) => (
          <li key={line}>{line}</li>
        ))}
      </ul>
      {folds ? (
        <button
          type="button"
          className="link-button"
          aria-expanded={open}
          aria-controls={listId}
          onClick={() => setOpen((o) => !o)}
        >
          {open ? "Show less" : full.length > FOLDED_LINES ? `Show all ${full.length} lines` : "Show all"}
        </button>
      ) : null}
    </div>
  );
}

/** Audit entries, newest first, as `audit.list` returns them; times to the second, Local or UTC. */
export function AuditTable({ entries, showResource = true }: { entries: AuditEntryDto[]; showResource?: boolean }) {
  return (
    <div>
      <div className="table-toolbar">
        <TimeZoneToggle />
      </div>
      <div className="table-wrap">
        <table className="task-table audit-table">
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Actor</th>
              <th scope="col">Action</th>
              {showResource ? <th scope="col">Resource</th> : null}
              <th scope="col">Change</th>
              <th scope="col">Client</th>
            </tr>
          </thead>
          <tbody>
            {entries.map((e) => (
              <tr key={e.id} data-audit-action={e.action}>
                <td className="col-time">
                  <Time value={e.createdAt} seconds />
                </td>
                <td>
                  <AuditActor kind={e.actorKind} id={e.actorId} />
                </td>
                <td>
                  <code>{e.action}</code>
                </td>
                {showResource ? (
                  <td>
                    <Resource type={e.resourceType} id={e.resourceId} name={e.resourceName} />
                  </td>
                ) : null}
                <td className="col-change">
                  <Change entryId={e.id} before={e.before} after={e.after} />
                </td>
                <td title={e.userAgent ?? undefined}>{e.clientAddress ?? <span className="muted">—</span>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}

import { Link } from "react-router-dom";
import type { AuditEntryDto } from "../../shared/audit.js";
import { Time } from "./Time.js";

const MAX_VALUE = 80;

function show(value: unknown): string {
  if (value === undefined) return "—";
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > MAX_VALUE ? `${text.slice(0, MAX_VALUE)}…` : text;
}

const asRecord = (v: unknown): Record<string, unknown> | null =>
  v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : null;

/** What changed, member by member: `role: operator → admin`; a side without members is shown whole. */
export function changeSummary(before: unknown, after: unknown): string[] {
  const b = asRecord(before);
  const a = asRecord(after);
  if (!b && !a) {
    if (before == null && after == null) return [];
    return [`${show(before ?? undefined)} → ${show(after ?? undefined)}`];
  }
  const keys = [...new Set([...Object.keys(b ?? {}), ...Object.keys(a ?? {})])];
  const lines: string[] = [];
  for (const k of keys) {
    const was = b?.[k];
    const now = a?.[k];
    if (JSON.stringify(was) === JSON.stringify(now)) continue;
    if (!b) lines.push(`${k}: ${show(now)}`);
    else if (!a) lines.push(`${k}: ${show(was)} (removed)`);
    else lines.push(`${k}: ${show(was)} → ${show(now)}`);
  }
  return lines;
}

function Resource({ type, id }: { type: string; id: string | null }) {
  if (!id) return <span>{type}</span>;
  if (type === "task") {
    return (
      <span>
        task <Link to={`/tasks/${id}`}>{id.slice(0, 8)}</Link>
      </span>
    );
  }
  if (type === "worker") {
    return (
      <span>
        worker <Link to="/workers">{id.slice(0, 8)}</Link>
      </span>
    );
  }
  return (
    <span title={id}>
      {type} <code>{id.length > 12 ? `${id.slice(0, 8)}…` : id}</code>
    </span>
  );
}

/** Audit entries, newest first, as `audit.list` returns them. */
export function AuditTable({ entries, showResource = true }: { entries: AuditEntryDto[]; showResource?: boolean }) {
  return (
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
          {entries.map((e) => {
            const change = changeSummary(e.before, e.after);
            return (
              <tr key={e.id} data-audit-action={e.action}>
                <td>
                  <Time value={e.createdAt} short />
                </td>
                <td>
                  <span className="muted">{e.actorKind}</span> {e.actorId}
                </td>
                <td>
                  <code>{e.action}</code>
                </td>
                {showResource ? (
                  <td>
                    <Resource type={e.resourceType} id={e.resourceId} />
                  </td>
                ) : null}
                <td className="col-change">
                  {change.length ? (
                    <ul className="plain-list change-list">
                      {change.map((line) => (
                        <li key={line}>{line}</li>
                      ))}
                    </ul>
                  ) : (
                    <span className="muted">—</span>
                  )}
                </td>
                <td title={e.userAgent ?? undefined}>{e.clientAddress ?? <span className="muted">—</span>}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

import { Link } from "react-router-dom";
import { StateBadge } from "../components/StateBadge.js";
import { TaskActions } from "../components/TaskActions.js";
import { formatShortDateTime } from "../lib/format.js";
import type { RouterOutputs } from "../trpc.js";

type TaskSummary = RouterOutputs["tasks"]["list"]["items"][number];

export interface Selection {
  selected: ReadonlySet<string>;
  toggle: (id: string, on: boolean) => void;
  toggleAll: (on: boolean) => void;
}

/** The tasks; with `selection`, a checkbox per row and one for every row shown, for bulk actions. */
export function TaskTable({ tasks, selection }: { tasks: TaskSummary[]; selection?: Selection }) {
  const allOn = selection ? tasks.length > 0 && tasks.every((t) => selection.selected.has(t.id)) : false;
  const someOn = selection ? tasks.some((t) => selection.selected.has(t.id)) : false;
  return (
    <div className="table-wrap">
      <table className="task-table">
        <thead>
          <tr>
            {selection ? (
              <th scope="col" className="col-select">
                <input
                  type="checkbox"
                  aria-label="Select every task shown"
                  checked={allOn}
                  ref={(el) => {
                    if (el) el.indeterminate = someOn && !allOn;
                  }}
                  onChange={(e) => selection.toggleAll(e.target.checked)}
                />
              </th>
            ) : null}
            <th scope="col">Title</th>
            <th scope="col">State</th>
            <th scope="col">Priority</th>
            <th scope="col">Tier</th>
            <th scope="col">Mode</th>
            <th scope="col">Capability</th>
            <th scope="col">Created by</th>
            <th scope="col">Created</th>
            <th scope="col">
              <span className="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {tasks.map((t) => (
            <tr key={t.id} data-task-id={t.id}>
              {selection ? (
                <td className="col-select">
                  <input
                    type="checkbox"
                    aria-label={`Select ${t.title}`}
                    checked={selection.selected.has(t.id)}
                    onChange={(e) => selection.toggle(t.id, e.target.checked)}
                  />
                </td>
              ) : null}
              <td className="col-title">
                <Link to={`/tasks/${t.id}`}>{t.title}</Link>
              </td>
              <td>
                <StateBadge state={t.state} />
              </td>
              <td>
                <span className="priority" data-priority={t.priority}>
                  {t.priority}
                </span>
              </td>
              <td>{t.riskTier}</td>
              <td>{t.mode}</td>
              <td>
                <code>{t.capability}</code>
              </td>
              <td>{t.createdBy}</td>
              <td>
                <time dateTime={t.createdAt.toISOString()}>{formatShortDateTime(t.createdAt)}</time>
              </td>
              <td className="col-actions">
                <TaskActions task={t} compact />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

import { Link } from "react-router-dom";
import type { TaskSort } from "../../shared/task-vocabulary.js";
import { StateBadge } from "../components/StateBadge.js";
import { TaskActions } from "../components/TaskActions.js";
import { formatDuration, formatShortDateTime } from "../lib/format.js";
import type { RouterOutputs } from "../trpc.js";

type TaskSummary = RouterOutputs["tasks"]["list"]["items"][number];

export interface Selection {
  selected: ReadonlySet<string>;
  toggle: (id: string, on: boolean) => void;
  toggleAll: (on: boolean) => void;
}

/** A column the list can be ordered by, and its two orders (the first is taken on the first click). */
const SORTABLE = {
  priority: ["priority_desc", "priority_asc"],
  created: ["created_desc", "created_asc"],
  updated: ["updated_desc", "updated_asc"],
} as const satisfies Record<string, readonly [TaskSort, TaskSort]>;
type SortColumn = keyof typeof SORTABLE;

function SortHeader({
  column,
  label,
  sort,
  onSort,
}: {
  column: SortColumn;
  label: string;
  sort: TaskSort;
  onSort: (next: TaskSort) => void;
}) {
  const [first, second] = SORTABLE[column];
  const active = sort === first || sort === second;
  const direction = sort === first ? "descending" : "ascending";
  return (
    <th scope="col" aria-sort={active ? direction : undefined} className="col-sortable">
      <button type="button" className="sort-button" onClick={() => onSort(sort === first ? second : first)}>
        {label}
        <span className="sort-mark" aria-hidden="true">
          {active ? (direction === "descending" ? "\u25BC" : "\u25B2") : "\u25BD"}
        </span>
      </button>
    </th>
  );
}

/** The latest attempt's run time; "so far" while it runs. */
function RunTime({ run }: { run: TaskSummary["lastRun"] }) {
  if (!run) return <span className="muted">—</span>;
  const ms = (run.finishedAt ?? new Date()).getTime() - run.startedAt.getTime();
  const text = ms < 1_000 ? "< 1 s" : formatDuration(Math.round(ms / 1_000));
  return <>{run.finishedAt ? text : `${text} so far`}</>;
}

/**
 * The tasks; with `selection`, a checkbox per row and one for every row shown, for bulk actions.
 * The Priority, Created and Last updated headers are buttons that order the list by that column (`onSort`).
 */
export function TaskTable({
  tasks,
  selection,
  sort,
  onSort,
}: {
  tasks: TaskSummary[];
  selection?: Selection;
  sort: TaskSort;
  onSort: (next: TaskSort) => void;
}) {
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
            <SortHeader column="priority" label="Priority" sort={sort} onSort={onSort} />
            <th scope="col">Tier</th>
            <th scope="col">Mode</th>
            <th scope="col">Capability</th>
            <th scope="col">Worker</th>
            <th scope="col" className="col-number">
              Attempts
            </th>
            <th scope="col">Duration</th>
            <th scope="col">Created by</th>
            <SortHeader column="created" label="Created" sort={sort} onSort={onSort} />
            <SortHeader column="updated" label="Last updated" sort={sort} onSort={onSort} />
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
              <td className="col-worker">{t.lastRun?.worker?.name ?? <span className="muted">—</span>}</td>
              <td className="col-number">{t.attempt}</td>
              <td className="col-duration">
                <RunTime run={t.lastRun} />
              </td>
              <td>{t.createdBy}</td>
              <td>
                <time dateTime={t.createdAt.toISOString()}>{formatShortDateTime(t.createdAt)}</time>
              </td>
              <td>
                <time dateTime={t.updatedAt.toISOString()}>{formatShortDateTime(t.updatedAt)}</time>
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

import { STATE_LABELS, type TaskState } from "../../shared/task-state.js";

export function StateBadge({ state }: { state: TaskState }) {
  return (
    <span className="state-badge" data-state={state}>
      {STATE_LABELS[state] ?? state}
    </span>
  );
}

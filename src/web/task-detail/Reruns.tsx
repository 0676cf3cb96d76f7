import { Link } from "react-router-dom";
import { hasRole } from "../../shared/roles.js";
import { ACTIVE_STATES } from "../../shared/task-state.js";
import { StateBadge } from "../components/StateBadge.js";
import { type RouterOutputs, trpc } from "../trpc.js";

type TaskDetail = RouterOutputs["tasks"]["get"];

/** "Rerun with changes": the submit form filled with this finished task's spec (tasks.rerun), for operators. */
export function RerunButton({ task }: { task: TaskDetail }) {
  const whoami = trpc.system.whoami.useQuery(undefined, { staleTime: Number.POSITIVE_INFINITY });
  const role = whoami.data?.role;
  if (!role || !hasRole(role, "operator") || ACTIVE_STATES.includes(task.state)) return null;
  return (
    <Link className="btn" to={`/tasks/new?rerunOf=${task.id}`}>
      Rerun with changes<span className="visually-hidden"> task {task.title}</span>
    </Link>
  );
}

/** The task this one reruns, and the tasks that rerun it, as facts beside its state. */
export function RerunFacts({ task }: { task: TaskDetail }) {
  return (
    <>
      {task.rerunOf ? (
        <div data-testid="rerun-of">
          <dt>Rerun of</dt>
          <dd>
            <Link to={`/tasks/${task.rerunOf.id}`}>{task.rerunOf.title}</Link> <StateBadge state={task.rerunOf.state} />
          </dd>
        </div>
      ) : null}
      {task.reruns.length ? (
        <div data-testid="reruns">
          <dt>Reruns</dt>
          <dd>
            <ul className="plain-list">
              {task.reruns.map((r) => (
                <li key={r.id}>
                  <Link to={`/tasks/${r.id}`}>{r.title}</Link> <StateBadge state={r.state} />
                </li>
              ))}
            </ul>
          </dd>
        </div>
      ) : null}
    </>
  );
}

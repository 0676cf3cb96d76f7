import { Link, useParams, useSearchParams } from "react-router-dom";
import { STATE_EVENT_TYPES, TIMELINE_EVENT_TYPES } from "../../shared/task-events.js";
import { ApprovalPanel } from "../approvals/ApprovalActions.js";
import { Breadcrumb } from "../components/Breadcrumb.js";
import { ErrorMessage } from "../components/ErrorMessage.js";
import { StateBadge } from "../components/StateBadge.js";
import { type TabDef, Tabs } from "../components/Tabs.js";
import { TaskActions } from "../components/TaskActions.js";
import { Time } from "../components/Time.js";
import { formatDateTime } from "../lib/format.js";
import { type RouterOutputs, trpc } from "../trpc.js";
import { AgentQuestion } from "./AgentQuestion.js";
import { Artifacts } from "./Artifacts.js";
import { Attempts } from "./Attempts.js";
import { Logs } from "./Logs.js";
import { Overview } from "./Overview.js";
import { Provenance } from "./Provenance.js";
import { RawJson } from "./RawJson.js";
import { RerunButton, RerunFacts } from "./Reruns.js";
import { TaskAudit } from "./TaskAudit.js";
import { Timeline } from "./Timeline.js";
import { useEventLog } from "./useEventLog.js";
import { isVerdictRationale, VerdictBadge } from "./VerdictBadge.js";
import { VerdictTab } from "./VerdictTab.js";
import { Waterfall } from "./Waterfall.js";

/** Most timeline events read at once; older ones on demand. A task's decisions and faults are seldom more. */
const TIMELINE_PAGE = 500;
const STATE_TYPES: ReadonlySet<string> = new Set(STATE_EVENT_TYPES);

/**
 * The task, and its timeline (every kind of event but the worker's output) live. A timeline event refreshes
 * the task (now without its events, so a state change refetches no log line); a state change also refreshes
 * the task list and this task's audit. The worker's output is read by the Logs tab only while it is open.
 */
function useLiveTask(id: string) {
  const utils = trpc.useUtils();
  const task = trpc.tasks.get.useQuery(
    { id },
    { retry: (count, err) => err.data?.code !== "NOT_FOUND" && err.data?.code !== "BAD_REQUEST" && count < 2 },
  );
  const timeline = useEventLog(id, TIMELINE_EVENT_TYPES, {
    pageSize: TIMELINE_PAGE,
    onLive: (event) => {
      void utils.tasks.get.invalidate({ id });
      if (!STATE_TYPES.has(event.type)) return;
      void utils.tasks.list.invalidate();
      void utils.audit.list.invalidate({ resourceId: id });
    },
  });
  return { task, timeline };
}

const TAB_IDS = [
  "overview",
  "timeline",
  "attempts",
  "logs",
  "artifacts",
  "verdict",
  "audit",
  "provenance",
  "json",
] as const;
const LIVE_STATES = new Set(["queued", "running", "canceling"]);

export default function TaskDetailPage() {
  const { id = "" } = useParams();
  // A new id is a new page: live state from the previous task must not carry over.
  return <TaskDetail key={id} id={id} />;
}

function TaskDetail({ id }: { id: string }) {
  const [params, setParams] = useSearchParams();
  const { task, timeline } = useLiveTask(id);
  const sub = timeline.sub;
  const tab = TAB_IDS.find((t) => t === params.get("tab")) ?? "overview";

  if (task.isPending) return <p className="loading page">Loading task…</p>;
  // A failed refetch keeps the task on screen (and the logs being read) under a banner; only a task never
  // loaded shows the error alone.
  if (task.error && !task.data) {
    const missing = task.error.data?.code === "NOT_FOUND" || task.error.data?.code === "BAD_REQUEST";
    return (
      <div className="page">
        <h1>{missing ? "Task not found" : "Could not load the task"}</h1>
        <ErrorMessage title={missing ? "There is no such task:" : "The server answered:"} error={task.error} />
        <p>
          <Link to="/tasks">Back to the task list</Link>
        </p>
      </div>
    );
  }

  const t = task.data;
  const tabs: TabDef[] = [
    { id: "overview", label: "Overview", render: () => <Overview task={t} /> },
    {
      id: "timeline",
      label: `Timeline (${timeline.events.length}${timeline.hasOlder ? "+" : ""})`,
      render: () => <Timeline log={timeline} rationale={t.verdict?.rationale ?? null} />,
    },
    {
      id: "attempts",
      label: `Attempts (${t.attempts.length})`,
      render: () => (
        <>
          <Waterfall task={t} events={timeline.events} />
          <Attempts task={t} events={timeline.events} />
        </>
      ),
    },
    { id: "logs", label: "Logs", render: () => <Logs taskId={t.id} live={LIVE_STATES.has(t.state)} /> },
    {
      id: "artifacts",
      label: `Artifacts (${t.artifacts.length})`,
      render: () => <Artifacts task={t} />,
    },
    { id: "verdict", label: "Verdict", render: () => <VerdictTab task={t} /> },
    { id: "audit", label: "Audit", render: () => <TaskAudit taskId={t.id} /> },
    { id: "provenance", label: "Provenance", render: () => <Provenance taskId={t.id} /> },
    { id: "json", label: "JSON", render: () => <RawJson task={t} /> },
  ];

  return (
    <div className="page">
      <Breadcrumb parent="Tasks" to="/tasks" current={`Task ${t.id.slice(0, 8)}`} />
      {task.error ? (
        <ErrorMessage title="Showing the task as last loaded. Could not refresh it:" error={task.error} />
      ) : null}
      <div className="page-head">
        <h1 className="task-title">{t.title}</h1>
        <div className="task-actions">
          <TaskActions task={t} />
          <RerunButton task={t} />
        </div>
      </div>
      <dl className="task-facts">
        <div>
          <dt>State</dt>
          <dd>
            <StateBadge state={t.state} />
            {t.stateReason && !isVerdictRationale(t.stateReason, t.verdict?.rationale) ? (
              <span className="muted state-reason" title={t.stateReason}>
                {" "}
                — {t.stateReason}
              </span>
            ) : null}
          </dd>
        </div>
        <div>
          <dt>Verdict</dt>
          <dd>
            {t.verdict ? (
              <>
                <VerdictBadge verdict={t.verdict.verdict} />{" "}
                <Link to={{ search: "?tab=verdict" }} replace>
                  Rationale
                  <span className="visually-hidden"> of the verdict on attempt {t.verdict.attempt}</span>
                </Link>
              </>
            ) : (
              <span className="muted">Not judged yet</span>
            )}
          </dd>
        </div>
        <div>
          <dt>Attempt</dt>
          <dd>{t.attempt}</dd>
        </div>
        <div>
          <dt>Created</dt>
          <dd>
            <time dateTime={t.createdAt.toISOString()}>{formatDateTime(t.createdAt)}</time> by {t.createdBy}
          </dd>
        </div>
        <div>
          <dt>Id</dt>
          <dd>
            <code>{t.id}</code>
          </dd>
        </div>
        <RerunFacts task={t} />
      </dl>
      <TaskNotices task={t} />
      <AgentQuestion task={t} />
      <ApprovalPanel task={t} />
      {sub.status === "error" ? (
        <ErrorMessage title="Live updates for this task stopped:" error={sub.error}>
          <button type="button" className="btn btn-small" onClick={() => sub.reset()}>
            Reconnect
          </button>
        </ErrorMessage>
      ) : null}
      <Tabs
        tabs={tabs}
        selected={tab}
        onSelect={(next) => setParams(next === "overview" ? {} : { tab: next }, { replace: true })}
      />
    </div>
  );
}

type TaskDetailData = RouterOutputs["tasks"]["get"];

/** Why a queued task is not moving, and how a cancellation ended: the two things an operator asks first. */
function TaskNotices({ task: t }: { task: TaskDetailData }) {
  return (
    <>
      {t.state === "queued" && t.waitingReason ? (
        <div className="notice notice-warn" role="status" data-testid="waiting-reason">
          <strong>Waiting:</strong> {t.waitingReason}
        </div>
      ) : null}
      {(t.state === "canceling" || t.state === "canceled") && t.cancelRequestedAt ? (
        <div className="notice notice-info" data-testid="cancel-outcome">
          <strong>
            {t.state === "canceling"
              ? "Cancel requested; waiting for the worker to confirm."
              : t.cancelConfirmed === true
                ? "Canceled, confirmed."
                : t.cancelConfirmed === false
                  ? "Canceled, unconfirmed: the worker did not confirm that it stopped."
                  : "Canceled."}
          </strong>{" "}
          Requested by {t.cancelRequestedBy ?? "unknown"} at <Time value={t.cancelRequestedAt} />
          {t.cancelReason ? <>: “{t.cancelReason}”</> : null}
        </div>
      ) : null}
    </>
  );
}

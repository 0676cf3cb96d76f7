import { useEffect, useMemo, useState } from "react";
import { Link, useParams, useSearchParams } from "react-router-dom";
import type { TaskEventDto } from "../../shared/task-events.js";
import { ErrorMessage } from "../components/ErrorMessage.js";
import { StateBadge } from "../components/StateBadge.js";
import { type TabDef, Tabs } from "../components/Tabs.js";
import { TaskActions } from "../components/TaskActions.js";
import { Time } from "../components/Time.js";
import { formatDateTime } from "../lib/format.js";
import { type RouterOutputs, trpc } from "../trpc.js";
import { Artifacts } from "./Artifacts.js";
import { Attempts } from "./Attempts.js";
import { Logs } from "./Logs.js";
import { Overview } from "./Overview.js";
import { TaskAudit } from "./TaskAudit.js";
import { OUTPUT_EVENT_TYPES, Timeline } from "./Timeline.js";
import { VerdictTab } from "./VerdictTab.js";

/**
 * The task, then its events live: the subscription resumes after the last event `tasks.get` returned,
 * so nothing between the fetch and the subscription is lost, and each event also refreshes the task.
 */
function useLiveTask(id: string) {
  const utils = trpc.useUtils();
  const task = trpc.tasks.get.useQuery(
    { id },
    { retry: (count, err) => err.data?.code !== "NOT_FOUND" && err.data?.code !== "BAD_REQUEST" && count < 2 },
  );
  const [resumeFrom, setResumeFrom] = useState<string | null>(null);
  const [live, setLive] = useState<TaskEventDto[]>([]);

  useEffect(() => {
    if (resumeFrom === null && task.data) setResumeFrom(task.data.events.at(-1)?.seq ?? "0");
  }, [resumeFrom, task.data]);

  const sub = trpc.tasks.onEvent.useSubscription(
    { taskId: id, lastEventId: resumeFrom },
    {
      enabled: resumeFrom !== null,
      onData: (msg) => {
        const event = msg.data;
        setLive((prev) => (prev.some((e) => e.seq === event.seq) ? prev : [...prev, event]));
        // Log lines carry their own text; only other events change the task, its list row or its audit.
        if (event.type === "log" || event.type === "progress") return;
        void utils.tasks.get.invalidate({ id });
        void utils.tasks.list.invalidate();
        void utils.audit.list.invalidate({ resourceId: id });
      },
    },
  );

  const events = useMemo(() => {
    const bySeq = new Map<string, TaskEventDto>();
    for (const e of task.data?.events ?? []) bySeq.set(e.seq, e);
    for (const e of live) bySeq.set(e.seq, e);
    return [...bySeq.values()].sort((a, b) => (BigInt(a.seq) < BigInt(b.seq) ? -1 : 1));
  }, [task.data, live]);

  return { task, events, sub };
}

const TAB_IDS = ["overview", "timeline", "attempts", "logs", "artifacts", "verdict", "audit"] as const;
const LIVE_STATES = new Set(["queued", "running", "judging", "canceling"]);

export default function TaskDetailPage() {
  const { id = "" } = useParams();
  // A new id is a new page: live state from the previous task must not carry over.
  return <TaskDetail key={id} id={id} />;
}

function TaskDetail({ id }: { id: string }) {
  const [params, setParams] = useSearchParams();
  const { task, events, sub } = useLiveTask(id);
  const tab = TAB_IDS.find((t) => t === params.get("tab")) ?? "overview";

  if (task.isPending) return <p className="loading page">Loading task…</p>;
  if (task.error) {
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
      label: `Timeline (${events.filter((e) => !OUTPUT_EVENT_TYPES.has(e.type)).length})`,
      render: () => <Timeline events={events} />,
    },
    { id: "attempts", label: `Attempts (${t.attempts.length})`, render: () => <Attempts task={t} /> },
    { id: "logs", label: "Logs", render: () => <Logs events={events} live={LIVE_STATES.has(t.state)} /> },
    {
      id: "artifacts",
      label: `Artifacts (${t.artifacts.length})`,
      render: () => <Artifacts task={t} />,
    },
    { id: "verdict", label: "Verdict", render: () => <VerdictTab task={t} /> },
    { id: "audit", label: "Audit", render: () => <TaskAudit taskId={t.id} /> },
  ];

  return (
    <div className="page">
      <p className="breadcrumb">
        <Link to="/tasks">Tasks</Link> <span aria-hidden="true">/</span>
      </p>
      <div className="page-head">
        <h1 className="task-title">{t.title}</h1>
        <TaskActions task={t} />
      </div>
      <dl className="task-facts">
        <div>
          <dt>State</dt>
          <dd>
            <StateBadge state={t.state} />
            {t.stateReason ? <span className="muted"> — {t.stateReason}</span> : null}
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
      </dl>
      <TaskNotices task={t} />
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

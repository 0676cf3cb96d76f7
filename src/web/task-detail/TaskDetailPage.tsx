import { useEffect, useMemo, useState } from "react";
import { Link, useParams, useSearchParams } from "react-router-dom";
import type { TaskEventDto } from "../../shared/task-events.js";
import { ErrorMessage } from "../components/ErrorMessage.js";
import { StateBadge } from "../components/StateBadge.js";
import { type TabDef, Tabs } from "../components/Tabs.js";
import { TaskActions } from "../components/TaskActions.js";
import { formatDateTime } from "../lib/format.js";
import { trpc } from "../trpc.js";
import { Overview } from "./Overview.js";
import { Timeline } from "./Timeline.js";

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
        void utils.tasks.get.invalidate({ id });
        void utils.tasks.list.invalidate();
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

const TAB_IDS = ["overview", "timeline"] as const;

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
    { id: "timeline", label: `Timeline (${events.length})`, render: () => <Timeline events={events} /> },
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

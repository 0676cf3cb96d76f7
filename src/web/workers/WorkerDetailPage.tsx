import { keepPreviousData } from "@tanstack/react-query";
import { useMemo, useState } from "react";
import { Link, useParams, useSearchParams } from "react-router-dom";
import { TASK_STATES, type TaskState } from "../../shared/task-state.js";
import { ACTIVITY_RANGE_KEYS, type ActivityRange } from "../../shared/worker-detail.js";
import { Breadcrumb } from "../components/Breadcrumb.js";
import { ErrorMessage } from "../components/ErrorMessage.js";
import { StateBadge } from "../components/StateBadge.js";
import { Time } from "../components/Time.js";
import { useHasRole } from "../components/useMe.js";
import { formatMs } from "../metrics/format.js";
import { type RouterOutputs, trpc } from "../trpc.js";
import { DISPATCH_HELP, DISPATCH_LABELS } from "./dispatch-labels.js";
import { type WorkerAction, WorkerActionDialog } from "./WorkerActionDialog.js";
import { WorkerActivity } from "./WorkerActivity.js";
import { BreakerStatus, HealthStatus } from "./WorkerStatus.js";

type HistoryItem = RouterOutputs["workers"]["history"]["items"][number];

/** Breaker, health and dispatch move on their own: the page asks again this often. */
const REFRESH_MS = 3_000;
const PAGE = 25;

const EVENT_LABELS: Record<HistoryItem["kind"], string> = {
  breaker: "Breaker",
  health: "Health",
  pause: "Paused",
  drain: "Drain started",
  drained: "Drained",
  resume: "Resumed",
  trip: "Breaker tripped",
  reset: "Breaker reset",
};
const ATTEMPT_LABELS: Record<string, string> = {
  running: "Running",
  completed: "Completed",
  failed: "Failed",
  canceled: "Canceled",
  lost: "Lost",
};

const isTaskState = (s: string): s is TaskState => (TASK_STATES as readonly string[]).includes(s);
const parseRange = (v: string | null): ActivityRange =>
  ACTIVITY_RANGE_KEYS.find((r) => r === v) ?? ("24h" satisfies ActivityRange);

export default function WorkerDetailPage() {
  const { id = "" } = useParams();
  return <WorkerDetail key={id} id={id} />;
}

function WorkerDetail({ id }: { id: string }) {
  const isAdmin = useHasRole("admin");
  const utils = trpc.useUtils();
  const [params, setParams] = useSearchParams();
  const range = parseRange(params.get("range"));
  const worker = trpc.workers.get.useQuery(
    { id },
    {
      refetchInterval: REFRESH_MS,
      retry: (count, err) => err.data?.code !== "NOT_FOUND" && err.data?.code !== "BAD_REQUEST" && count < 2,
    },
  );
  const [action, setAction] = useState<WorkerAction | null>(null);

  if (worker.isPending) return <p className="loading page">Loading worker…</p>;
  if (worker.error && !worker.data) {
    const missing = worker.error.data?.code === "NOT_FOUND" || worker.error.data?.code === "BAD_REQUEST";
    return (
      <div className="page">
        <h1>{missing ? "Worker not found" : "Could not load the worker"}</h1>
        <ErrorMessage title={missing ? "There is no such worker:" : "The server answered:"} error={worker.error} />
        <p>
          <Link to="/workers">Back to the workers</Link>
        </p>
      </div>
    );
  }
  const w = worker.data;
  const dispatch = w.dispatch.state;
  const refresh = () =>
    Promise.all([
      utils.workers.get.invalidate({ id }),
      utils.workers.list.invalidate(),
      utils.workers.history.invalidate({ id }),
    ]);

  return (
    <div className="page worker-detail">
      <Breadcrumb parent="Workers" to="/workers" current={w.name} />
      <div className="page-head">
        <h1>{w.name}</h1>
        {isAdmin ? (
          <div className="task-actions worker-actions">
            {dispatch !== "paused" ? (
              <button type="button" className="btn btn-small" onClick={() => setAction("pause")}>
                Pause
              </button>
            ) : null}
            {dispatch === "active" || dispatch === "paused" ? (
              <button type="button" className="btn btn-small" onClick={() => setAction("drain")}>
                Drain
              </button>
            ) : null}
            {dispatch !== "active" ? (
              <button type="button" className="btn btn-small btn-primary" onClick={() => setAction("resume")}>
                Resume
              </button>
            ) : null}
            {w.breaker.state !== "closed" ? (
              <button type="button" className="btn btn-small" onClick={() => setAction("reset")}>
                Reset breaker
              </button>
            ) : null}
            {w.breaker.state !== "tripped" ? (
              <button type="button" className="btn btn-small btn-danger" onClick={() => setAction("trip")}>
                Trip breaker
              </button>
            ) : null}
          </div>
        ) : null}
      </div>
      {worker.error ? <ErrorMessage title="Could not refresh the worker:" error={worker.error} /> : null}
      <dl className="worker-facts" aria-label="Worker">
        <div>
          <dt>Dispatch</dt>
          <dd>
            <span
              className={dispatch === "active" ? "tag" : "tag tag-bad"}
              data-dispatch={dispatch}
              title={DISPATCH_HELP[dispatch]}
            >
              {DISPATCH_LABELS[dispatch]}
            </span>
            {!w.enabled ? <span className="tag tag-bad">Disabled</span> : null}
            {dispatch !== "active" && w.dispatch.changedAt ? (
              <span className="muted small">
                {" "}
                since <Time value={w.dispatch.changedAt} short />
                {w.dispatch.changedBy ? ` by ${w.dispatch.changedBy}` : ""}
                {w.dispatch.reason ? `: ${w.dispatch.reason}` : ""}
              </span>
            ) : null}
          </dd>
        </div>
        <div>
          <dt>Health</dt>
          <dd>
            <HealthStatus health={w.health} checkedAt={w.healthCheckedAt} />
          </dd>
        </div>
        <div>
          <dt>Circuit breaker</dt>
          <dd>
            <BreakerStatus breaker={w.breaker} />
          </dd>
        </div>
        <div>
          <dt>Capabilities</dt>
          <dd>
            {w.capabilities.map((c) => (
              <code key={c} className="chip">
                {c}
              </code>
            ))}
          </dd>
        </div>
        <div>
          <dt>In flight</dt>
          <dd data-testid="in-flight">
            {w.inFlight} / {w.maxConcurrency}
          </dd>
        </div>
        <div>
          <dt>Protocol</dt>
          <dd>
            {w.protocol === "a2a" ? "A2A (Agent2Agent)" : "Agency worker, v1"} ·{" "}
            <code className="worker-url">{w.url}</code>
          </dd>
        </div>
      </dl>
      {w.lastError ? (
        <p className="worker-error">
          <strong>Last error</strong> {w.lastErrorAt ? <Time value={w.lastErrorAt} short /> : null}:{" "}
          <span className="mono">{w.lastError}</span>
        </p>
      ) : null}
      <WorkerActivity
        workerId={id}
        range={range}
        onRange={(r) => setParams(r === "24h" ? {} : { range: r }, { replace: true })}
      />
      <WorkerAttempts workerId={id} />
      <WorkerHistory workerId={id} />
      {action ? (
        <WorkerActionDialog worker={w} action={action} onClose={() => setAction(null)} onDone={refresh} />
      ) : null}
    </div>
  );
}

function WorkerAttempts({ workerId }: { workerId: string }) {
  const list = trpc.workers.attempts.useInfiniteQuery(
    { id: workerId, limit: PAGE },
    { getNextPageParam: (last) => last.nextCursor, placeholderData: keepPreviousData, refetchInterval: 10_000 },
  );
  const items = useMemo(() => list.data?.pages.flatMap((p) => p.items) ?? [], [list.data]);
  return (
    <section aria-labelledby="attempts-heading">
      <h2 id="attempts-heading">Tasks it ran</h2>
      {list.error ? <ErrorMessage title="Could not load its attempts:" error={list.error} /> : null}
      {list.data && items.length === 0 ? <p className="muted">This worker has run no attempt yet.</p> : null}
      {items.length ? (
        <div className="table-wrap">
          <table className="task-table worker-attempts">
            <thead>
              <tr>
                <th scope="col">Task</th>
                <th scope="col">Attempt</th>
                <th scope="col">Outcome here</th>
                <th scope="col">Task now</th>
                <th scope="col">Started</th>
                <th scope="col">Run time</th>
              </tr>
            </thead>
            <tbody>
              {items.map((a) => (
                <tr key={a.attemptId} data-task={a.task.id}>
                  <th scope="row">
                    <Link to={`/tasks/${a.task.id}`}>{a.task.title}</Link>
                  </th>
                  <td>#{a.number}</td>
                  <td>
                    <span title={a.error ?? undefined}>{ATTEMPT_LABELS[a.state] ?? a.state}</span>
                  </td>
                  <td>{isTaskState(a.task.state) ? <StateBadge state={a.task.state} /> : a.task.state}</td>
                  <td>
                    <Time value={a.startedAt} short />
                  </td>
                  <td>{formatMs(a.durationMs)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      {list.hasNextPage ? (
        <button
          type="button"
          className="btn btn-small"
          disabled={list.isFetchingNextPage}
          onClick={() => void list.fetchNextPage()}
        >
          {list.isFetchingNextPage ? "Loading…" : "Load more attempts"}
        </button>
      ) : null}
    </section>
  );
}

function WorkerHistory({ workerId }: { workerId: string }) {
  const list = trpc.workers.history.useInfiniteQuery(
    { id: workerId, limit: PAGE },
    { getNextPageParam: (last) => last.nextCursor, placeholderData: keepPreviousData, refetchInterval: 10_000 },
  );
  const items = useMemo(() => list.data?.pages.flatMap((p) => p.items) ?? [], [list.data]);
  return (
    <section aria-labelledby="history-heading">
      <h2 id="history-heading">Breaker, health and admin history</h2>
      {list.error ? <ErrorMessage title="Could not load its history:" error={list.error} /> : null}
      {list.data && items.length === 0 ? (
        <p className="muted">Nothing has happened to this worker yet: no breaker or health change, no admin action.</p>
      ) : null}
      {items.length ? (
        <div className="table-wrap">
          <table className="task-table worker-history">
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">What</th>
                <th scope="col">Change</th>
                <th scope="col">Reason</th>
                <th scope="col">By</th>
              </tr>
            </thead>
            <tbody>
              {items.map((e) => (
                <tr key={e.seq} data-kind={e.kind}>
                  <td>
                    <Time value={e.at} short />
                  </td>
                  <th scope="row">{EVENT_LABELS[e.kind]}</th>
                  <td>{e.from || e.to ? `${e.from ?? "—"} → ${e.to ?? "—"}` : "—"}</td>
                  <td className="history-reason">
                    {e.reason ?? <span className="muted">—</span>}
                    {e.taskId ? (
                      <>
                        {" "}
                        <Link to={`/tasks/${e.taskId}`}>(task)</Link>
                      </>
                    ) : null}
                  </td>
                  <td>{e.actor ?? <span className="muted">system</span>}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      {list.hasNextPage ? (
        <button
          type="button"
          className="btn btn-small"
          disabled={list.isFetchingNextPage}
          onClick={() => void list.fetchNextPage()}
        >
          {list.isFetchingNextPage ? "Loading…" : "Load older history"}
        </button>
      ) : null}
    </section>
  );
}

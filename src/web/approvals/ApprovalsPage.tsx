import { Link, useSearchParams } from "react-router-dom";
import { ErrorMessage } from "../components/ErrorMessage.js";
import { Time } from "../components/Time.js";
import { formatDuration } from "../lib/format.js";
import { Artifacts } from "../task-detail/Artifacts.js";
import { VerdictTab } from "../task-detail/VerdictTab.js";
import { type RouterOutputs, trpc } from "../trpc.js";
import { ApprovalActions } from "./ApprovalActions.js";

type QueueItem = RouterOutputs["tasks"]["approvalQueue"]["items"][number];

/** The queue is read again this often, so a task decided elsewhere or newly waiting shows up. */
const REFRESH_MS = 10_000;

/**
 * Tasks whose accepted attempt waits for a person's approval (APPROVAL_POLICY), oldest wait first. The
 * selected one (?task=) shows its diff beside the council's verdict and findings, with Approve and Reject.
 */
export default function ApprovalsPage() {
  const [params, setParams] = useSearchParams();
  const queue = trpc.tasks.approvalQueue.useQuery(undefined, { refetchInterval: REFRESH_MS });
  const items = queue.data?.items ?? [];
  const wanted = params.get("task");
  const selected = items.find((t) => t.id === wanted) ?? items[0] ?? null;
  const select = (id: string | null) => setParams(id ? { task: id } : {}, { replace: true });

  return (
    <div className="page approvals-page">
      <h1>Approvals</h1>
      <p className="hint">
        Tasks whose risk tier needs a person's approval wait here once the council accepts their attempt. Approve to
        make the result final, or reject it with a note. Oldest first.
      </p>
      {queue.error ? <ErrorMessage title="Could not load the approval queue:" error={queue.error} /> : null}
      {queue.isPending ? <p className="loading">Loading…</p> : null}
      {queue.data && items.length === 0 ? (
        <p className="muted" data-testid="approvals-empty">
          No task is waiting for approval.
        </p>
      ) : null}
      {items.length ? (
        <>
          <p className="list-status" aria-live="polite">
            {queue.data?.count === 1 ? "1 task waits" : `${queue.data?.count ?? 0} tasks wait`}
            {queue.data && queue.data.count > items.length ? ` (the oldest ${items.length} are listed)` : ""}
          </p>
          <div className="table-wrap">
            <table className="task-table approval-table">
              <caption className="visually-hidden">Tasks awaiting approval, oldest first</caption>
              <thead>
                <tr>
                  <th scope="col">Task</th>
                  <th scope="col">Tier</th>
                  <th scope="col">Created by</th>
                  <th scope="col">Waiting</th>
                  <th scope="col">
                    <span className="visually-hidden">Select</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {items.map((t) => (
                  <QueueRow key={t.id} task={t} current={t.id === selected?.id} onSelect={() => select(t.id)} />
                ))}
              </tbody>
            </table>
          </div>
        </>
      ) : null}
      {selected ? (
        <SelectedTask
          key={selected.id}
          item={selected}
          onDecided={() => select(items.find((t) => t.id !== selected.id)?.id ?? null)}
        />
      ) : null}
    </div>
  );
}

function QueueRow({ task: t, current, onSelect }: { task: QueueItem; current: boolean; onSelect: () => void }) {
  const waitedSec = Math.max(0, Math.round((Date.now() - t.waitingSince.getTime()) / 1000));
  return (
    <tr data-testid="approval-row" data-task-id={t.id} aria-current={current ? "true" : undefined}>
      <td className="wrap">
        <Link to={`/tasks/${t.id}`}>{t.title}</Link>
      </td>
      <td>{t.riskTier}</td>
      <td>{t.createdBy}</td>
      <td>
        {formatDuration(waitedSec)}{" "}
        <span className="muted">
          (since <Time value={t.waitingSince} />)
        </span>
      </td>
      <td>
        <button type="button" className="btn btn-small" aria-pressed={current} onClick={onSelect}>
          Review<span className="visually-hidden"> {t.title}</span>
        </button>
      </td>
    </tr>
  );
}

function SelectedTask({ item, onDecided }: { item: QueueItem; onDecided: () => void }) {
  const task = trpc.tasks.get.useQuery({ id: item.id });
  return (
    <section className="approval-review" aria-labelledby="approval-review-title" data-testid="approval-review">
      <h2 id="approval-review-title">
        Review: <Link to={`/tasks/${item.id}`}>{item.title}</Link>
      </h2>
      <p className="muted">
        Tier {item.riskTier}: {item.policy.approver === "admin" ? "an admin decides" : "an operator or admin decides"}
        {item.policy.fourEyes ? ", not its creator" : ""}. Attempt {item.attempt}, created by {item.createdBy}.
      </p>
      <ApprovalActions task={item} refusal={item.refusal} onDecided={onDecided} />
      {task.error ? <ErrorMessage title="Could not load the task:" error={task.error} /> : null}
      {task.data ? (
        <div className="approval-grid">
          <section aria-labelledby="approval-diff-title">
            <h3 id="approval-diff-title" className="section-title">
              Diff
            </h3>
            <Artifacts task={task.data} />
          </section>
          <section aria-labelledby="approval-verdict-title">
            <h3 id="approval-verdict-title" className="section-title">
              Verdict and findings
            </h3>
            <VerdictTab task={task.data} />
          </section>
        </div>
      ) : null}
    </section>
  );
}

import { type FormEvent, useState } from "react";
import type { TaskFilter } from "../../shared/task-list.js";
import { Dialog } from "../components/Dialog.js";
import { type RouterOutputs, trpc } from "../trpc.js";
import { countText } from "./count-text.js";

type BulkResult = RouterOutputs["tasks"]["cancelMany"];
type Kind = "cancel" | "retry";
type Scope = { by: "ids"; ids: string[] } | { by: "filter"; filter: TaskFilter };

interface Outcome {
  kind: Kind;
  result: BulkResult;
}

/**
 * Cancel or retry the selected tasks, or every task matching the filter. By filter, the dialog first
 * shows how many tasks match (`tasks.count`) and acts only once the operator confirms.
 */
export function BulkActions({
  selectedIds,
  filter,
  noneMatch,
  titles,
  onDone,
}: {
  selectedIds: string[];
  filter: TaskFilter;
  /** The list under this filter is empty: there is nothing for the filter buttons to act on. */
  noneMatch: boolean;
  titles: ReadonlyMap<string, string>;
  onDone: () => void;
}) {
  const [dialog, setDialog] = useState<{ kind: Kind; scope: Scope } | null>(null);
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const n = selectedIds.length;

  return (
    <section className="bulk-actions" aria-label="Bulk actions">
      <div className="bulk-row">
        <span className="bulk-count" aria-live="polite">
          {n ? `${n} selected` : "None selected"}
        </span>
        <button
          type="button"
          className="btn btn-small btn-danger"
          disabled={!n}
          onClick={() => setDialog({ kind: "cancel", scope: { by: "ids", ids: selectedIds } })}
        >
          Cancel selected
        </button>
        <button
          type="button"
          className="btn btn-small"
          disabled={!n}
          onClick={() => setDialog({ kind: "retry", scope: { by: "ids", ids: selectedIds } })}
        >
          Retry selected
        </button>
        <span className="bulk-sep" aria-hidden="true" />
        <button
          type="button"
          className="btn btn-small btn-danger"
          disabled={noneMatch}
          title={noneMatch ? "No task matches the filter" : undefined}
          onClick={() => setDialog({ kind: "cancel", scope: { by: "filter", filter } })}
        >
          Cancel all matching filter…
        </button>
        <button
          type="button"
          className="btn btn-small"
          disabled={noneMatch}
          title={noneMatch ? "No task matches the filter" : undefined}
          onClick={() => setDialog({ kind: "retry", scope: { by: "filter", filter } })}
        >
          Retry all matching filter…
        </button>
      </div>
      {outcome ? <OutcomeSummary outcome={outcome} titles={titles} onDismiss={() => setOutcome(null)} /> : null}
      {dialog ? (
        <BulkDialog
          kind={dialog.kind}
          scope={dialog.scope}
          onClose={() => setDialog(null)}
          onDone={(result) => {
            setOutcome({ kind: dialog.kind, result });
            onDone();
          }}
        />
      ) : null}
    </section>
  );
}

function BulkDialog({
  kind,
  scope,
  onClose,
  onDone,
}: {
  kind: Kind;
  scope: Scope;
  onClose: () => void;
  onDone: (r: BulkResult) => void;
}) {
  const utils = trpc.useUtils();
  const [reason, setReason] = useState("");
  const [localError, setLocalError] = useState<string | null>(null);
  const count = trpc.tasks.count.useQuery(
    { filter: scope.by === "filter" ? scope.filter : { sort: "created_desc" } },
    { enabled: scope.by === "filter", staleTime: 0, gcTime: 0 },
  );
  const finish = async (r: BulkResult, close: () => void) => {
    await utils.tasks.list.invalidate();
    await utils.tasks.get.invalidate();
    onDone(r);
    close();
  };
  const cancelMany = trpc.tasks.cancelMany.useMutation();
  const retryMany = trpc.tasks.retryMany.useMutation();
  const mutation = kind === "cancel" ? cancelMany : retryMany;

  const matching =
    scope.by === "ids" ? scope.ids.length : count.data ? Math.min(count.data.count, count.data.limit) : null;
  const verb = kind === "cancel" ? "Cancel" : "Retry";
  const noun = (k: number) => `${k} ${k === 1 ? "task" : "tasks"}`;
  const title = scope.by === "ids" ? `${verb} ${noun(scope.ids.length)}` : `${verb} every task matching the filter`;

  const submit = (e: FormEvent, close: () => void) => {
    e.preventDefault();
    const selection = scope.by === "ids" ? { ids: scope.ids } : { filter: scope.filter };
    if (kind === "cancel") {
      if (!reason.trim()) {
        setLocalError("Give a reason: it is recorded with each cancellation.");
        return;
      }
      setLocalError(null);
      cancelMany.mutate({ selection, reason: reason.trim() }, { onSuccess: (r) => void finish(r, close) });
    } else {
      retryMany.mutate({ selection }, { onSuccess: (r) => void finish(r, close) });
    }
  };

  return (
    <Dialog title={title} onClose={onClose}>
      {(close) => (
        <form onSubmit={(e) => submit(e, close)} noValidate>
          {scope.by === "filter" ? (
            <p data-testid="bulk-count">
              {count.isPending ? (
                "Counting the matching tasks…"
              ) : count.error ? (
                <span className="inline-error">Could not count them: {count.error.message}</span>
              ) : count.data ? (
                <>
                  <strong>{countText(count.data.count, count.data.capped)}</strong>{" "}
                  {count.data.count === 1 && !count.data.capped ? "matches" : "match"} the current filter.
                  {count.data.count > count.data.limit
                    ? ` Only the first ${count.data.limit} are acted on; run it again for the rest.`
                    : ""}
                </>
              ) : null}
            </p>
          ) : null}
          <p className="muted">
            {kind === "cancel"
              ? "Tasks that are queued or running go to canceling; others are skipped and listed with the reason."
              : "Finished tasks (changes requested, rejected, failed, canceled) go back to the queue as a new attempt; others are skipped."}
          </p>
          {kind === "cancel" ? (
            <>
              <label htmlFor="bulk-reason">Reason</label>
              <textarea
                id="bulk-reason"
                rows={3}
                maxLength={500}
                value={reason}
                aria-invalid={localError ? true : undefined}
                aria-describedby="bulk-error"
                onChange={(e) => setReason(e.target.value)}
              />
            </>
          ) : null}
          <p id="bulk-error" className="field-error" role={localError || mutation.error ? "alert" : undefined}>
            {localError ?? (mutation.error ? `The server refused: ${mutation.error.message}` : "")}
          </p>
          <div className="dialog-buttons">
            <button type="button" className="btn" onClick={close}>
              Close
            </button>
            <button
              type="submit"
              className={kind === "cancel" ? "btn btn-danger" : "btn btn-primary"}
              disabled={mutation.isPending || matching === null || matching === 0}
            >
              {mutation.isPending ? "Working…" : matching === null ? verb : `${verb} ${noun(matching)}`}
            </button>
          </div>
        </form>
      )}
    </Dialog>
  );
}

function OutcomeSummary({
  outcome,
  titles,
  onDismiss,
}: {
  outcome: Outcome;
  titles: ReadonlyMap<string, string>;
  onDismiss: () => void;
}) {
  const { result, kind } = outcome;
  const skipped = result.results.filter((r) => r.outcome === "skipped");
  return (
    <div className="notice notice-info bulk-outcome" role="status" data-testid="bulk-outcome">
      <strong>
        {kind === "cancel" ? "Cancel" : "Retry"}: {result.done} done, {result.skipped} skipped.
      </strong>
      <button type="button" className="btn btn-small" onClick={onDismiss}>
        Dismiss
      </button>
      {skipped.length ? (
        <ul>
          {skipped.map((r) => (
            <li key={r.id}>
              {titles.get(r.id) ?? <code>{r.id.slice(0, 8)}</code>}: {r.reason}
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

import { type FormEvent, useId, useState } from "react";
import { Link } from "react-router-dom";
import { MAX_APPROVAL_NOTE_LENGTH, taskRejectInputSchema } from "../../shared/approvals.js";
import { Dialog } from "../components/Dialog.js";
import { errorText, refusalText } from "../components/ErrorMessage.js";
import { trpc } from "../trpc.js";

interface Props {
  task: { id: string; title: string };
  /** Why this user may not decide (the tier's approver rule, four eyes); null or absent: they may. */
  refusal?: string | null;
  /** After a decision: the queue page moves on to the next task. */
  onDecided?: () => void;
}

/**
 * Approve (with an optional note) and Reject (with a required note) for a task awaiting approval. When the
 * tier's policy does not let this user decide, the buttons are disabled and the reason says why.
 */
export function ApprovalActions({ task, refusal, onDecided }: Props) {
  const utils = trpc.useUtils();
  const id = useId();
  const [note, setNote] = useState("");
  const [rejecting, setRejecting] = useState(false);
  const done = async () => {
    await Promise.all([
      utils.tasks.get.invalidate({ id: task.id }),
      utils.tasks.list.invalidate(),
      utils.tasks.approvalQueue.invalidate(),
    ]);
    onDecided?.();
  };
  const approve = trpc.tasks.approve.useMutation({ onSuccess: done });
  const forbidden = Boolean(refusal);

  return (
    <div className="approval-actions" data-testid="approval-actions">
      <label htmlFor={`${id}-note`}>Note (optional when approving)</label>
      <textarea
        id={`${id}-note`}
        rows={2}
        value={note}
        maxLength={MAX_APPROVAL_NOTE_LENGTH}
        disabled={forbidden}
        onChange={(e) => setNote(e.target.value)}
      />
      <div className="task-actions">
        <button
          type="button"
          className="btn btn-primary"
          disabled={forbidden || approve.isPending}
          aria-describedby={forbidden ? `${id}-refusal` : undefined}
          onClick={() => {
            approve.reset();
            approve.mutate({ id: task.id, ...(note.trim() ? { note: note.trim() } : {}) });
          }}
        >
          {approve.isPending ? "Approving…" : "Approve"}
          <span className="visually-hidden"> task {task.title}</span>
        </button>
        <button
          type="button"
          className="btn btn-danger"
          disabled={forbidden}
          aria-describedby={forbidden ? `${id}-refusal` : undefined}
          onClick={() => setRejecting(true)}
        >
          Reject…<span className="visually-hidden"> task {task.title}</span>
        </button>
      </div>
      {refusal ? (
        <p id={`${id}-refusal`} className="hint" data-testid="approval-refusal">
          {refusal}
        </p>
      ) : null}
      {approve.error ? (
        <p className="inline-error" role="alert">
          Approve failed: {errorText(approve.error)}
        </p>
      ) : null}
      {rejecting ? (
        <RejectDialog task={task} initialNote={note} onClose={() => setRejecting(false)} onDone={done} />
      ) : null}
    </div>
  );
}

function RejectDialog({
  task,
  initialNote,
  onClose,
  onDone,
}: {
  task: Props["task"];
  initialNote: string;
  onClose: () => void;
  onDone: () => Promise<void>;
}) {
  const id = useId();
  const [note, setNote] = useState(initialNote);
  const [localError, setLocalError] = useState<string | null>(null);
  const reject = trpc.tasks.reject.useMutation();
  return (
    <Dialog title={`Reject “${task.title}”`} onClose={onClose}>
      {(close) => {
        const submit = (e: FormEvent) => {
          e.preventDefault();
          const parsed = taskRejectInputSchema.safeParse({ id: task.id, note });
          if (!parsed.success) {
            setLocalError(parsed.error.issues[0]?.message ?? "Give a note");
            return;
          }
          setLocalError(null);
          reject.mutate(parsed.data, {
            onSuccess: async () => {
              close();
              await onDone();
            },
          });
        };
        return (
          <form onSubmit={submit} noValidate>
            <p className="hint">The task becomes rejected; your note is kept in the audit trail and on the log.</p>
            <label htmlFor={`${id}-note`}>Why is it rejected?</label>
            <textarea
              id={`${id}-note`}
              value={note}
              rows={3}
              maxLength={MAX_APPROVAL_NOTE_LENGTH}
              aria-invalid={localError ? true : undefined}
              aria-describedby={`${id}-error`}
              onChange={(e) => setNote(e.target.value)}
            />
            <p id={`${id}-error`} className="field-error" role={localError || reject.error ? "alert" : undefined}>
              {localError ?? (reject.error ? refusalText(reject.error) : "")}
            </p>
            <div className="dialog-buttons">
              <button type="button" className="btn" onClick={close}>
                Keep waiting
              </button>
              <button type="submit" className="btn btn-danger" disabled={reject.isPending}>
                {reject.isPending ? "Rejecting…" : "Reject task"}
              </button>
            </div>
          </form>
        );
      }}
    </Dialog>
  );
}

/** The task page's panel while a task awaits approval: what it waits for, and the buttons for who may decide. */
export function ApprovalPanel({ task }: { task: { id: string; title: string; state: string; updatedAt: Date } }) {
  const waiting = task.state === "awaiting_approval";
  const permission = trpc.tasks.approvalPermission.useQuery({ id: task.id }, { enabled: waiting });
  if (!waiting) return null;
  const policy = permission.data?.policy;
  return (
    <section className="notice notice-info approval-panel" aria-labelledby="approval-panel-title">
      <h2 id="approval-panel-title" className="section-title">
        Awaiting approval
      </h2>
      <p>
        The council accepted this attempt; its risk tier needs{" "}
        {policy?.approver === "admin" ? "an admin's" : "a person's"} approval before the result is final
        {policy?.fourEyes ? ", by someone other than its creator" : ""}. Read the Artifacts and Verdict tabs, or decide
        from the <Link to={`/approvals?task=${task.id}`}>approval queue</Link>.
      </p>
      {permission.error ? (
        <p className="inline-error" role="alert">
          Could not check who may decide: {errorText(permission.error)}
        </p>
      ) : permission.data ? (
        <ApprovalActions task={task} refusal={permission.data.refusal} />
      ) : null}
    </section>
  );
}

import { type FormEvent, useEffect, useId, useRef, useState } from "react";
import type { TaskState } from "../../shared/task-state.js";
import { allowedActions } from "../lib/task-actions.js";
import { trpc } from "../trpc.js";
import { errorText, refusalText } from "./ErrorMessage.js";

interface Props {
  task: { id: string; title: string; state: TaskState };
  /** Smaller buttons for table rows. */
  compact?: boolean;
}

/** Cancel (with a reason) and Retry, shown only where the state machine lets this user make the move. */
export function TaskActions({ task, compact }: Props) {
  const utils = trpc.useUtils();
  const whoami = trpc.system.whoami.useQuery(undefined, { staleTime: Number.POSITIVE_INFINITY });
  const [dialogOpen, setDialogOpen] = useState(false);
  const refresh = () => Promise.all([utils.tasks.list.invalidate(), utils.tasks.get.invalidate({ id: task.id })]);
  const retry = trpc.tasks.retry.useMutation({ onSuccess: refresh });
  const { cancel, retry: canRetry } = allowedActions(task.state, whoami.data?.role);
  if (!cancel && !canRetry && !retry.error) return null;

  const size = compact ? "btn btn-small" : "btn";
  return (
    <div className="task-actions">
      {cancel ? (
        <button type="button" className={`${size} btn-danger`} onClick={() => setDialogOpen(true)}>
          Cancel<span className="visually-hidden"> task {task.title}</span>
        </button>
      ) : null}
      {canRetry ? (
        <button
          type="button"
          className={size}
          disabled={retry.isPending}
          onClick={() => {
            retry.reset();
            retry.mutate({ id: task.id });
          }}
        >
          {retry.isPending ? "Retrying…" : "Retry"}
          <span className="visually-hidden"> task {task.title}</span>
        </button>
      ) : null}
      {retry.error ? (
        <span className="inline-error" role="alert">
          Retry failed: {errorText(retry.error)}
        </span>
      ) : null}
      {dialogOpen ? <CancelDialog task={task} onClose={() => setDialogOpen(false)} onDone={refresh} /> : null}
    </div>
  );
}

function CancelDialog({
  task,
  onClose,
  onDone,
}: {
  task: Props["task"];
  onClose: () => void;
  onDone: () => Promise<unknown>;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const id = useId();
  const [reason, setReason] = useState("");
  const [localError, setLocalError] = useState<string | null>(null);
  const cancel = trpc.tasks.cancel.useMutation({
    onSuccess: async () => {
      await onDone();
      onClose();
    },
  });

  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
  }, []);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!reason.trim()) {
      setLocalError("Give a reason: it is recorded with the cancellation.");
      return;
    }
    setLocalError(null);
    cancel.mutate({ id: task.id, reason: reason.trim() });
  };

  return (
    <dialog ref={ref} className="dialog" aria-labelledby={`${id}-title`} onClose={onClose}>
      <form onSubmit={submit} noValidate>
        <h2 id={`${id}-title`}>Cancel “{task.title}”</h2>
        <label htmlFor={`${id}-reason`}>Reason</label>
        <textarea
          id={`${id}-reason`}
          value={reason}
          maxLength={500}
          rows={3}
          aria-invalid={localError ? true : undefined}
          aria-describedby={`${id}-error`}
          onChange={(e) => setReason(e.target.value)}
        />
        <p id={`${id}-error`} className="field-error" role={localError || cancel.error ? "alert" : undefined}>
          {localError ?? (cancel.error ? refusalText(cancel.error) : "")}
        </p>
        <div className="dialog-buttons">
          <button type="button" className="btn" onClick={() => ref.current?.close()}>
            Keep task
          </button>
          <button type="submit" className="btn btn-danger" disabled={cancel.isPending}>
            {cancel.isPending ? "Canceling…" : "Cancel task"}
          </button>
        </div>
      </form>
    </dialog>
  );
}

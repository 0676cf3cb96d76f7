import { type FormEvent, useId, useState } from "react";
import { tripReasonSchema, workerReasonSchema } from "../../shared/worker-detail.js";
import { Dialog } from "../components/Dialog.js";
import { refusalText } from "../components/ErrorMessage.js";
import { trpc } from "../trpc.js";

export type WorkerAction = "trip" | "reset" | "pause" | "drain" | "resume";

const ACTIONS: Record<
  WorkerAction,
  { title: (name: string) => string; explain: string; confirm: string; pending: string; danger: boolean }
> = {
  trip: {
    title: (name) => `Trip the breaker of ${name}?`,
    explain:
      "The breaker is held open until someone resets it, also across restarts: no call reaches the worker, and tasks that need its capabilities go to other workers or wait. The reason is recorded in the audit trail.",
    confirm: "Trip breaker",
    pending: "Tripping…",
    danger: true,
  },
  reset: {
    title: (name) => `Reset the breaker of ${name}?`,
    explain: "The breaker closes and its past failures are forgotten: the worker is sent work again.",
    confirm: "Reset breaker",
    pending: "Resetting…",
    danger: false,
  },
  pause: {
    title: (name) => `Pause ${name}?`,
    explain:
      "The worker takes no new attempt until it is resumed; the attempts it is running finish normally. Tasks that need its capabilities go to other workers or wait.",
    confirm: "Pause worker",
    pending: "Pausing…",
    danger: true,
  },
  drain: {
    title: (name) => `Drain ${name}?`,
    explain:
      "The worker takes no new attempt and finishes the ones it is running; once none is left it shows as drained, and can be stopped or removed safely. Resume it to send it work again.",
    confirm: "Drain worker",
    pending: "Draining…",
    danger: true,
  },
  resume: {
    title: (name) => `Resume ${name}?`,
    explain: "The worker takes work again.",
    confirm: "Resume worker",
    pending: "Resuming…",
    danger: false,
  },
};

/**
 * Confirms an admin's action on a worker, with a reason recorded in the audit trail and the worker's history:
 * required to trip a breaker, optional otherwise.
 */
export function WorkerActionDialog({
  worker,
  action,
  onClose,
  onDone,
}: {
  worker: { id: string; name: string };
  action: WorkerAction;
  onClose: () => void;
  onDone: () => Promise<unknown> | undefined;
}) {
  const id = useId();
  const def = ACTIONS[action];
  const [reason, setReason] = useState("");
  const [localError, setLocalError] = useState<string | null>(null);
  const options = { onSuccess: () => onDone() };
  const trip = trpc.workers.trip.useMutation(options);
  const reset = trpc.workers.reset.useMutation(options);
  const pause = trpc.workers.pause.useMutation(options);
  const drain = trpc.workers.drain.useMutation(options);
  const resume = trpc.workers.resume.useMutation(options);
  const mutation = { trip, reset, pause, drain, resume }[action];
  const required = action === "trip";

  return (
    <Dialog title={def.title(worker.name)} onClose={onClose}>
      {(close) => {
        const submit = (e: FormEvent) => {
          e.preventDefault();
          const parsed = (required ? tripReasonSchema : workerReasonSchema).safeParse(reason);
          if (!parsed.success) {
            setLocalError(parsed.error.issues[0]?.message ?? "The reason cannot be used.");
            return;
          }
          setLocalError(null);
          const input = { id: worker.id, ...(parsed.data ? { reason: parsed.data } : {}) };
          const done = { onSuccess: close };
          if (action === "trip") trip.mutate({ id: worker.id, reason: parsed.data ?? "" }, done);
          else if (action === "reset") reset.mutate(input, done);
          else if (action === "pause") pause.mutate(input, done);
          else if (action === "drain") drain.mutate(input, done);
          else resume.mutate(input, done);
        };
        return (
          <form onSubmit={submit} noValidate aria-label={def.title(worker.name)}>
            <p>{def.explain}</p>
            <div className="field">
              <label htmlFor={`${id}-reason`}>Reason{required ? "" : " (optional)"}</label>
              <textarea
                id={`${id}-reason`}
                value={reason}
                maxLength={500}
                rows={3}
                required={required}
                aria-invalid={localError ? true : undefined}
                aria-describedby={`${id}-error`}
                onChange={(e) => setReason(e.target.value)}
              />
              <p id={`${id}-error`} className="field-error" role={localError || mutation.error ? "alert" : undefined}>
                {localError ?? (mutation.error ? refusalText(mutation.error) : "")}
              </p>
            </div>
            <div className="dialog-buttons">
              <button type="button" className="btn" onClick={close}>
                Keep as is
              </button>
              <button
                type="submit"
                className={def.danger ? "btn btn-danger" : "btn btn-primary"}
                disabled={mutation.isPending}
              >
                {mutation.isPending ? def.pending : def.confirm}
              </button>
            </div>
          </form>
        );
      }}
    </Dialog>
  );
}

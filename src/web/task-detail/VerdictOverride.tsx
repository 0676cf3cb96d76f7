import { type FormEvent, useState } from "react";
import { STATE_LABELS, type TaskState } from "../../shared/task-state.js";
import { VERDICT_STATE, VERDICT_STATES, VERDICTS, type Verdict } from "../../shared/verdict.js";
import { Dialog } from "../components/Dialog.js";
import { formatDateTime } from "../lib/format.js";
import { trpc } from "../trpc.js";

/** The server's bounds, checked here too so the admin hears about them before submitting. */
const MIN_JUSTIFICATION = 10;
const MAX_JUSTIFICATION = 2000;

export interface OverrideRecord {
  by: string;
  at: string;
  from: TaskState;
  to: TaskState;
  justification: string;
}

/** An admin's override of this verdict, shown beside the council's own. */
export function OverrideNotice({ override }: { override: OverrideRecord }) {
  const at = new Date(override.at);
  return (
    <section className="notice" data-testid="verdict-override">
      <strong>
        Overridden from {STATE_LABELS[override.from]} to {STATE_LABELS[override.to]}
      </strong>{" "}
      by {override.by} on <time dateTime={override.at}>{formatDateTime(at)}</time>.
      <p className="description">{override.justification}</p>
    </section>
  );
}

/** The "Override verdict" button and its dialog; render it for admins on a judged task only. */
export function OverrideVerdict({ taskId, state }: { taskId: string; state: TaskState }) {
  const [open, setOpen] = useState(false);
  if (!VERDICT_STATES.includes(state)) return null;
  return (
    <>
      <button type="button" className="btn btn-small" onClick={() => setOpen(true)}>
        Override verdict
      </button>
      {open ? <OverrideDialog taskId={taskId} state={state} onClose={() => setOpen(false)} /> : null}
    </>
  );
}

function OverrideDialog({ taskId, state, onClose }: { taskId: string; state: TaskState; onClose: () => void }) {
  const utils = trpc.useUtils();
  const choices = VERDICTS.filter((v) => VERDICT_STATE[v] !== state);
  const [verdict, setVerdict] = useState<Verdict>(choices[0] ?? "accept");
  const [justification, setJustification] = useState("");
  const [localError, setLocalError] = useState<string | null>(null);
  const override = trpc.tasks.override.useMutation();

  const submit = (e: FormEvent, close: () => void) => {
    e.preventDefault();
    const text = justification.trim();
    if (text.length < MIN_JUSTIFICATION) {
      setLocalError(`Write a justification of at least ${MIN_JUSTIFICATION} characters: it is audited and signed.`);
      return;
    }
    setLocalError(null);
    override.mutate(
      { id: taskId, verdict, justification: text },
      {
        onSuccess: async () => {
          await utils.tasks.get.invalidate({ id: taskId });
          await utils.tasks.list.invalidate();
          await utils.audit.list.invalidate({ resourceId: taskId });
          close();
        },
      },
    );
  };

  return (
    <Dialog title="Override verdict" onClose={onClose}>
      {(close) => (
        <form onSubmit={(e) => submit(e, close)} noValidate>
          <p className="muted">
            The task is {STATE_LABELS[state]}. An override replaces the council's verdict; your justification is kept in
            the audit trail and on the signed provenance chain.
          </p>
          <label htmlFor="override-verdict">New verdict</label>
          <select id="override-verdict" value={verdict} onChange={(e) => setVerdict(e.target.value as Verdict)}>
            {choices.map((v) => (
              <option key={v} value={v}>
                {STATE_LABELS[VERDICT_STATE[v]]}
              </option>
            ))}
          </select>
          <label htmlFor="override-justification">Justification</label>
          <textarea
            id="override-justification"
            rows={4}
            required
            maxLength={MAX_JUSTIFICATION}
            value={justification}
            aria-invalid={localError ? true : undefined}
            aria-describedby="override-error"
            onChange={(e) => setJustification(e.target.value)}
          />
          <p id="override-error" className="field-error" role={localError || override.error ? "alert" : undefined}>
            {localError ?? (override.error ? `The server refused: ${override.error.message}` : "")}
          </p>
          <div className="dialog-buttons">
            <button type="button" className="btn" onClick={close}>
              Close
            </button>
            <button type="submit" className="btn btn-danger" disabled={override.isPending}>
              {override.isPending ? "Overriding…" : "Override"}
            </button>
          </div>
        </form>
      )}
    </Dialog>
  );
}

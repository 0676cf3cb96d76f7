import { z } from "zod";
import { taskIdSchema } from "./task-inputs.js";
import { safeText } from "./text.js";

/** Longest note an approver may write (tasks.approve, tasks.reject, /approve, /reject). */
export const MAX_APPROVAL_NOTE_LENGTH = 2000;

const note = (required: boolean) =>
  safeText(
    z
      .string({ error: required ? "Give a note: say why the attempt is rejected" : "The note must be text" })
      .trim()
      .min(required ? 1 : 0, "Give a note: say why the attempt is rejected")
      .max(MAX_APPROVAL_NOTE_LENGTH, `The note must be at most ${MAX_APPROVAL_NOTE_LENGTH} characters`),
  );

/** tasks.approve: the note is optional (an empty one is none). */
export const taskApproveInputSchema = z.object({ id: taskIdSchema, note: note(false).optional() });
/** tasks.reject: the note is required, the reason the task is rejected. */
export const taskRejectInputSchema = z.object({ id: taskIdSchema, note: note(true) });
export type TaskApproveInput = z.input<typeof taskApproveInputSchema>;
export type TaskRejectInput = z.input<typeof taskRejectInputSchema>;

export type ApprovalDecision = "approve" | "reject";

/** Who may decide on a waiting task of a tier, as APPROVAL_POLICY sets it (shown read-only in the console). */
export interface ApprovalTierPolicy {
  /** An accepting verdict waits for a person's approval. */
  required: boolean;
  /** "operator": an operator or an admin decides; "admin": an admin only. */
  approver: "operator" | "admin";
  /** The task's creator may not decide on it. */
  fourEyes: boolean;
}

import { z } from "zod";
import { EVENT_PAGE_MAX, TASK_EVENT_TYPES } from "./task-events.js";
import { taskSpecSchema } from "./task-spec.js";
import { safeText } from "./text.js";

/**
 * The inputs of the task procedures that act on one task, defined once: the tRPC router (tasks.*) and the
 * MCP tools (src/server/mcp) parse with these, so both refuse the same input with the same words.
 */
export const taskIdSchema = z.uuid({ error: "Task id must be a UUID" });

export const taskIdInputSchema = z.object({ id: taskIdSchema });

export const cancelReasonSchema = safeText(
  z.string().trim().min(1, "Give a reason").max(500, "Reason must be at most 500 characters"),
);

export const taskCancelInputSchema = z.object({ id: taskIdSchema, reason: cancelReasonSchema });

const eventSeq = (name: string) => z.string().regex(/^\d{1,19}$/, `${name} must be an event sequence number`);

/** Event kinds, from the vocabulary in task-events.ts; absent: every kind. */
export const eventKindsSchema = z
  .array(
    z.enum(TASK_EVENT_TYPES, {
      error: (issue) =>
        `Unknown event kind ${JSON.stringify(issue.input)}; the kinds are: ${TASK_EVENT_TYPES.join(", ")}`,
    }),
  )
  .min(1, "Give at least one event kind, or leave kinds out for every kind")
  .max(32, "At most 32 event kinds")
  .transform((k) => [...new Set(k)]);

/** One page of a task's events (tasks.events). */
export const taskEventsInputSchema = z
  .object({
    taskId: taskIdSchema,
    kinds: eventKindsSchema.optional(),
    limit: z
      .number()
      .int()
      .min(1, "limit must be at least 1")
      .max(EVENT_PAGE_MAX, `limit must be at most ${EVENT_PAGE_MAX}`)
      .default(200),
    after: eventSeq("after").optional(),
    before: eventSeq("before").optional(),
    /** Only the events of this attempt (`data.attempt`): one attempt's output. */
    attempt: z
      .number({ error: "attempt must be an attempt number" })
      .int("attempt must be a whole number")
      .min(1, "attempt must be at least 1")
      .max(1_000_000, "attempt must be at most 1000000")
      .optional(),
    /** Only the events whose line, message or error contains this text (case-insensitive). */
    search: safeText(
      z.string().trim().min(1, "Give some text to search for").max(200, "Search at most 200 characters"),
    ).optional(),
  })
  .refine((q) => q.after === undefined || q.before === undefined, "Give after or before, not both");

const spec = taskSpecSchema.shape;

/**
 * Changes to a finished task's spec for its rerun: each field given replaces the original's whole (an
 * `input` replaces the whole input, a `budget` the whole budget), each checked as tasks.create checks it.
 * No defaults: a field left out keeps the original's value. An unknown field is refused (a misspelt
 * `titel` would otherwise rerun the task unchanged).
 */
export const taskSpecEditsSchema = z.strictObject({
  title: spec.title.optional(),
  description: spec.description.removeDefault().optional(),
  priority: spec.priority.removeDefault().optional(),
  riskTier: spec.riskTier.removeDefault().optional(),
  mode: spec.mode.removeDefault().optional(),
  capability: spec.capability.removeDefault().optional(),
  acceptanceCriteria: spec.acceptanceCriteria.removeDefault().optional(),
  scope: spec.scope.removeDefault().optional(),
  budget: spec.budget.removeDefault().optional(),
  input: spec.input.removeDefault().optional(),
});
export type TaskSpecEdits = z.output<typeof taskSpecEditsSchema>;

/** tasks.rerun: a new task from a finished one's spec with `edits` applied. */
export const taskRerunInputSchema = z.object({ id: taskIdSchema, edits: taskSpecEditsSchema.default({}) });
export type TaskRerunInput = z.input<typeof taskRerunInputSchema>;

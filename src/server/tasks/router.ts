import { tracked } from "@trpc/server";
import { z } from "zod";
import { taskApproveInputSchema, taskRejectInputSchema } from "../../shared/approvals.js";
import { taskAnswerInputSchema } from "../../shared/task-answer.js";
import {
  cancelReasonSchema,
  eventKindsSchema,
  taskCancelInputSchema,
  taskEventsInputSchema,
  taskIdInputSchema,
  taskIdSchema,
  taskRerunInputSchema,
} from "../../shared/task-inputs.js";
import { taskFilterSchema, taskListInputSchema } from "../../shared/task-list.js";
import { taskSpecSchema } from "../../shared/task-spec.js";
import { safeText } from "../../shared/text.js";
import { verdictSchema } from "../../shared/verdict.js";
import { callerOf } from "../audit/trail.js";
import { clientInfo } from "../auth/request.js";
import { adminProcedure, operatorProcedure, router, viewerProcedure } from "../trpc.js";
import { BULK_LIMIT, TASK_COUNT_CAP } from "./service.js";

const taskId = taskIdSchema;
const reason = cancelReasonSchema;
/** A bulk selection: explicit ids, or every task matching a filter (up to BULK_LIMIT). */
const selection = z
  .object({
    ids: z
      .array(taskId)
      .min(1, "Select at least one task")
      .max(BULK_LIMIT, `At most ${BULK_LIMIT} tasks at once`)
      .optional(),
    filter: taskFilterSchema.optional(),
  })
  .refine((s) => (s.ids === undefined) !== (s.filter === undefined), "Give either ids or a filter, not both");
const justification = safeText(
  z
    .string({ error: "Give a written justification for the override" })
    .trim()
    .min(10, "The justification must be at least 10 characters: say why the council's verdict is wrong")
    .max(2000, "The justification must be at most 2000 characters"),
);
const eventId = z.string().regex(/^\d{1,19}$/, "lastEventId must be an event sequence number");
const kinds = eventKindsSchema;

export const tasksRouter = router({
  create: operatorProcedure
    .input(taskSpecSchema)
    .mutation(({ ctx, input }) =>
      ctx.services.tasks.create(ctx.actor, input, clientInfo(ctx.clientAddress, ctx.request), ctx.request?.trace),
    ),

  list: viewerProcedure
    .input(taskListInputSchema)
    .query(({ ctx, input }) => ctx.services.tasks.list(input.filter, input.limit, input.cursor)),

  get: viewerProcedure.input(taskIdInputSchema).query(({ ctx, input }) => ctx.services.tasks.get(input.id)),

  /**
   * One page of a task's events, oldest first: the newest `limit` by default, the next ones with `after`,
   * older ones with `before`; only `kinds` when given. `through` is where to resume (with `after`, or as
   * `onEvent`'s `lastEventId`) so that nothing is missed or read twice.
   */
  events: viewerProcedure.input(taskEventsInputSchema).query(({ ctx, input }) => ctx.services.tasks.events(input)),

  /**
   * How many tasks match a filter, counted up to TASK_COUNT_CAP (`capped`: there are more): the list's
   * total, and what the console shows before a bulk action by filter (`limit`: at most that many are acted on).
   */
  count: viewerProcedure
    .input(z.object({ filter: taskFilterSchema.default({ sort: "created_desc" }) }))
    .query(async ({ ctx, input }) => {
      const counted = await ctx.services.tasks.countUpTo(input.filter, TASK_COUNT_CAP);
      return { count: Math.min(counted, TASK_COUNT_CAP), capped: counted > TASK_COUNT_CAP, limit: BULK_LIMIT };
    }),

  cancel: operatorProcedure
    .input(taskCancelInputSchema)
    .mutation(({ ctx, input }) =>
      ctx.services.tasks.cancel(ctx.actor, input.id, input.reason, clientInfo(ctx.clientAddress, ctx.request)),
    ),

  /** Answers the question an A2A agent asked (input-required / auth-required); the run sends it to the agent. */
  answer: operatorProcedure
    .input(taskAnswerInputSchema)
    .mutation(({ ctx, input }) => ctx.services.a2a.answer(callerOf(ctx), input.id, input.text)),

  retry: operatorProcedure
    .input(taskIdInputSchema)
    .mutation(({ ctx, input }) =>
      ctx.services.tasks.retry(ctx.actor, input.id, clientInfo(ctx.clientAddress, ctx.request)),
    ),

  /** A new task from a finished task's spec with `edits` applied; it links back to the original (rerunOf). */
  rerun: operatorProcedure
    .input(taskRerunInputSchema)
    .mutation(({ ctx, input }) =>
      ctx.services.tasks.rerun(
        ctx.actor,
        input.id,
        input.edits,
        clientInfo(ctx.clientAddress, ctx.request),
        ctx.request?.trace,
      ),
    ),

  /** An admin replaces the council's verdict, with a written justification (audited, on the chain). */
  override: adminProcedure
    .input(z.object({ id: taskId, verdict: verdictSchema, justification }))
    .mutation(({ ctx, input }) =>
      ctx.services.tasks.override(
        ctx.actor,
        input.id,
        input.verdict,
        input.justification,
        clientInfo(ctx.clientAddress, ctx.request),
      ),
    ),

  /**
   * Approves a task awaiting approval (→ accepted), with an optional note; the tier's approver rule and four
   * eyes apply (APPROVAL_POLICY). Audited (`task.approve`) and on the provenance log.
   */
  approve: operatorProcedure
    .input(taskApproveInputSchema)
    .mutation(({ ctx, input }) =>
      ctx.services.approvals.approve(ctx.actor, input.id, input.note, clientInfo(ctx.clientAddress, ctx.request)),
    ),

  /** Rejects a task awaiting approval (→ rejected) with a required note; as approve otherwise (`task.reject`). */
  reject: operatorProcedure
    .input(taskRejectInputSchema)
    .mutation(({ ctx, input }) =>
      ctx.services.approvals.reject(ctx.actor, input.id, input.note, clientInfo(ctx.clientAddress, ctx.request)),
    ),

  /** The tasks awaiting approval, oldest first, each with why the caller may not decide on it (null: may). */
  approvalQueue: viewerProcedure.query(({ ctx }) => ctx.services.approvals.queue(ctx.actor)),

  /** The tier's approval policy for one task, and why the caller may not decide on it (null: may). */
  approvalPermission: viewerProcedure
    .input(taskIdInputSchema)
    .query(({ ctx, input }) => ctx.services.approvals.permission(ctx.actor, input.id)),

  cancelMany: operatorProcedure
    .input(z.object({ selection, reason }))
    .mutation(({ ctx, input }) =>
      ctx.services.tasks.cancelMany(
        ctx.actor,
        input.selection,
        input.reason,
        clientInfo(ctx.clientAddress, ctx.request),
      ),
    ),

  retryMany: operatorProcedure
    .input(z.object({ selection }))
    .mutation(({ ctx, input }) =>
      ctx.services.tasks.retryMany(ctx.actor, input.selection, clientInfo(ctx.clientAddress, ctx.request)),
    ),

  /**
   * Every task event (or one task's, or only some kinds) after `lastEventId` (absent: from now on), then
   * live; each `tracked` by its seq, so a reconnection resumes where it stopped.
   */
  onEvent: viewerProcedure
    .input(z.object({ taskId: taskId.optional(), kinds: kinds.optional(), lastEventId: eventId.nullish() }))
    .subscription(async function* ({ ctx, input, signal }) {
      const filter = { taskId: input.taskId, kinds: input.kinds };
      for await (const e of ctx.services.hub.subscribe({ filter, lastEventId: input.lastEventId, signal })) {
        yield tracked(e.seq, e);
      }
    }),
});

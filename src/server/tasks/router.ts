import { tracked } from "@trpc/server";
import { z } from "zod";
import { taskListInputSchema } from "../../shared/task-list.js";
import { taskSpecSchema } from "../../shared/task-spec.js";
import { operatorProcedure, router, viewerProcedure } from "../trpc.js";

const taskId = z.uuid({ error: "Task id must be a UUID" });
const eventId = z.string().regex(/^\d{1,19}$/, "lastEventId must be an event sequence number");

export const tasksRouter = router({
  create: operatorProcedure
    .input(taskSpecSchema)
    .mutation(({ ctx, input }) => ctx.services.tasks.create(ctx.actor, input)),

  list: viewerProcedure
    .input(taskListInputSchema)
    .query(({ ctx, input }) => ctx.services.tasks.list(input.filter, input.limit, input.cursor)),

  get: viewerProcedure.input(z.object({ id: taskId })).query(({ ctx, input }) => ctx.services.tasks.get(input.id)),

  cancel: operatorProcedure
    .input(z.object({ id: taskId, reason: z.string().trim().min(1, "Give a reason").max(500) }))
    .mutation(({ ctx, input }) => ctx.services.tasks.cancel(ctx.actor, input.id, input.reason)),

  retry: operatorProcedure
    .input(z.object({ id: taskId }))
    .mutation(({ ctx, input }) => ctx.services.tasks.retry(ctx.actor, input.id)),

  /** Every task event (or one task's) after `lastEventId`, then live; each `tracked` by its seq. */
  onEvent: viewerProcedure
    .input(z.object({ taskId: taskId.optional(), lastEventId: eventId.nullish() }))
    .subscription(async function* ({ ctx, input, signal }) {
      for await (const e of ctx.services.hub.subscribe({ ...input, signal })) yield tracked(e.seq, e);
    }),
});

import { z } from "zod";
import {
  workerActionInputSchema,
  workerActivityInputSchema,
  workerPageInputSchema,
  workerTripInputSchema,
} from "../../shared/worker-detail.js";
import { workerInputSchema, workerRegisterSchema } from "../../shared/workers.js";
import { callerOf as caller } from "../audit/trail.js";
import { adminProcedure, router, viewerProcedure } from "../trpc.js";

const fields = workerInputSchema.shape;
const workerId = z.uuid({ error: "Worker id must be a UUID" });

export const workersRouter = router({
  list: viewerProcedure.query(({ ctx }) => ctx.services.workers.list()),

  get: viewerProcedure.input(z.object({ id: workerId })).query(({ ctx, input }) => ctx.services.workers.get(input.id)),

  register: adminProcedure
    .input(workerRegisterSchema)
    .mutation(({ ctx, input }) => ctx.services.workers.register(caller(ctx), input)),

  update: adminProcedure
    .input(
      z.object({
        id: workerId,
        // Field by field without the registration defaults: zod applies a default inside .partial(), so a patch
        // that leaves a field out would otherwise reset it (capabilities to none, maxConcurrency to 1).
        patch: z.object({
          name: fields.name.optional(),
          url: fields.url.optional(),
          protocol: fields.protocol.unwrap().optional(),
          capabilities: fields.capabilities.unwrap().optional(),
          maxConcurrency: fields.maxConcurrency.unwrap().optional(),
          token: fields.token.unwrap().nullable().optional(),
          enabled: z.boolean().optional(),
        }),
      }),
    )
    .mutation(({ ctx, input }) => ctx.services.workers.update(caller(ctx), input.id, input.patch)),

  remove: adminProcedure
    .input(z.object({ id: workerId }))
    .mutation(({ ctx, input }) => ctx.services.workers.remove(caller(ctx), input.id)),

  /** Holds the worker's circuit breaker open (persisted) until `reset`; the reason is required and audited. */
  trip: adminProcedure
    .input(workerTripInputSchema)
    .mutation(({ ctx, input }) => ctx.services.workers.trip(caller(ctx), input.id, input.reason)),

  /** Closes the worker's circuit breaker, whatever opened it. */
  reset: adminProcedure
    .input(workerActionInputSchema)
    .mutation(({ ctx, input }) => ctx.services.workers.reset(caller(ctx), input.id, input.reason)),

  /** Takes no new attempt until resumed; running ones finish. */
  pause: adminProcedure
    .input(workerActionInputSchema)
    .mutation(({ ctx, input }) => ctx.services.workers.setDispatch(caller(ctx), input.id, "pause", input.reason)),

  /** Takes no new attempt and becomes `drained` once its running attempts have ended. */
  drain: adminProcedure
    .input(workerActionInputSchema)
    .mutation(({ ctx, input }) => ctx.services.workers.setDispatch(caller(ctx), input.id, "drain", input.reason)),

  /** Takes work again after a pause or drain. */
  resume: adminProcedure
    .input(workerActionInputSchema)
    .mutation(({ ctx, input }) => ctx.services.workers.setDispatch(caller(ctx), input.id, "resume", input.reason)),

  /** The attempts the worker ran (with their tasks), newest first. */
  attempts: viewerProcedure
    .input(workerPageInputSchema)
    .query(({ ctx, input }) => ctx.services.workers.attempts(input.id, input.limit, input.cursor)),

  /** Breaker and health changes and admins' actions, newest first. */
  history: viewerProcedure
    .input(workerPageInputSchema)
    .query(({ ctx, input }) => ctx.services.workers.historyOf(input.id, input.limit, input.cursor)),

  /** Attempts, failed share and p50/p95 run time per time bucket. */
  activity: viewerProcedure
    .input(workerActivityInputSchema)
    .query(({ ctx, input }) => ctx.services.workers.activity(input.id, input.range)),
});

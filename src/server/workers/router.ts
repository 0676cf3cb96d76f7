import { z } from "zod";
import { workerInputSchema } from "../../shared/workers.js";
import { callerOf as caller } from "../audit/trail.js";
import { adminProcedure, router, viewerProcedure } from "../trpc.js";

const workerId = z.uuid({ error: "Worker id must be a UUID" });

export const workersRouter = router({
  list: viewerProcedure.query(({ ctx }) => ctx.services.workers.list()),

  get: viewerProcedure.input(z.object({ id: workerId })).query(({ ctx, input }) => ctx.services.workers.get(input.id)),

  register: adminProcedure
    .input(workerInputSchema)
    .mutation(({ ctx, input }) => ctx.services.workers.register(caller(ctx), input)),

  update: adminProcedure
    .input(
      z.object({
        id: workerId,
        patch: workerInputSchema.omit({ token: true }).partial().extend({
          token: workerInputSchema.shape.token.unwrap().nullable().optional(),
          enabled: z.boolean().optional(),
        }),
      }),
    )
    .mutation(({ ctx, input }) => ctx.services.workers.update(caller(ctx), input.id, input.patch)),

  remove: adminProcedure
    .input(z.object({ id: workerId }))
    .mutation(({ ctx, input }) => ctx.services.workers.remove(caller(ctx), input.id)),

  /** Holds the worker's circuit breaker open (persisted) until `reset`. */
  trip: adminProcedure
    .input(z.object({ id: workerId }))
    .mutation(({ ctx, input }) => ctx.services.workers.trip(caller(ctx), input.id)),

  /** Closes the worker's circuit breaker, whatever opened it. */
  reset: adminProcedure
    .input(z.object({ id: workerId }))
    .mutation(({ ctx, input }) => ctx.services.workers.reset(caller(ctx), input.id)),
});

import { z } from "zod";
import { adminProcedure, router, viewerProcedure } from "../trpc.js";
import { workerInputSchema } from "./config-workers.js";

const workerId = z.uuid({ error: "Worker id must be a UUID" });

export const workersRouter = router({
  list: viewerProcedure.query(({ ctx }) => ctx.services.workers.list()),

  get: viewerProcedure.input(z.object({ id: workerId })).query(({ ctx, input }) => ctx.services.workers.get(input.id)),

  register: adminProcedure.input(workerInputSchema).mutation(({ ctx, input }) => ctx.services.workers.register(input)),

  update: adminProcedure
    .input(
      z.object({
        id: workerId,
        patch: workerInputSchema
          .omit({ token: true })
          .partial()
          .extend({ token: z.string().min(1).max(500).nullable().optional(), enabled: z.boolean().optional() }),
      }),
    )
    .mutation(({ ctx, input }) => ctx.services.workers.update(input.id, input.patch)),

  remove: adminProcedure
    .input(z.object({ id: workerId }))
    .mutation(({ ctx, input }) => ctx.services.workers.remove(input.id)),

  /** Holds the worker's circuit breaker open (persisted) until `reset`. */
  trip: adminProcedure
    .input(z.object({ id: workerId }))
    .mutation(({ ctx, input }) => ctx.services.workers.trip(input.id)),

  /** Closes the worker's circuit breaker, whatever opened it. */
  reset: adminProcedure
    .input(z.object({ id: workerId }))
    .mutation(({ ctx, input }) => ctx.services.workers.reset(input.id)),
});

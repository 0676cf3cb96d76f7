import { z } from "zod";
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

  /** Holds the worker's circuit breaker open (persisted) until `reset`. */
  trip: adminProcedure
    .input(z.object({ id: workerId }))
    .mutation(({ ctx, input }) => ctx.services.workers.trip(caller(ctx), input.id)),

  /** Closes the worker's circuit breaker, whatever opened it. */
  reset: adminProcedure
    .input(z.object({ id: workerId }))
    .mutation(({ ctx, input }) => ctx.services.workers.reset(caller(ctx), input.id)),
});

import { tracked } from "@trpc/server";
import { z } from "zod";
import { metricsHistoryInputSchema } from "../../shared/metrics.js";
import { usageRollupInputSchema } from "../../shared/usage.js";
import { router, viewerProcedure } from "../trpc.js";

export const metricsRouter = router({
  /** The current figures, read now. */
  snapshot: viewerProcedure.query(({ ctx }) => ctx.services.metrics.read()),

  /** A snapshot every METRICS_INTERVAL_MS, each tracked by its time so a reconnecting client carries on. */
  live: viewerProcedure
    .input(z.object({ lastEventId: z.string().max(32).nullish() }).optional())
    .subscription(async function* ({ ctx, signal }) {
      for await (const s of ctx.services.metrics.live(signal)) yield tracked(String(s.at.getTime()), s);
    }),

  /** Persisted one-minute rollups in [from, to), merged into steps of `step` minutes. */
  history: viewerProcedure
    .input(metricsHistoryInputSchema)
    .query(({ ctx, input }) => ctx.services.metrics.history(input)),

  /** Reported usage (tokens, cost) of the attempts that ended in [from, to), by worker, UTC day or model. */
  usage: viewerProcedure.input(usageRollupInputSchema).query(({ ctx, input }) => ctx.services.metrics.usage(input)),
});

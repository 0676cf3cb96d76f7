import { publicProcedure, router, viewerProcedure } from "../trpc.js";
import type { HealthSummary, SystemHealth } from "./service.js";

export const systemRouter = router({
  /** Anonymous callers (and sessions that must change their password first) learn only whether it is ready. */
  health: publicProcedure.query(
    async ({ ctx }): Promise<HealthSummary | SystemHealth> =>
      ctx.actor && !ctx.passwordChangeRequired ? ctx.services.system.health() : ctx.services.system.summary(),
  ),
  whoami: viewerProcedure.query(({ ctx }) => ctx.actor),
  /** Each risk tier's attempts, tries, idle timeout per try and default deadline (read-only). */
  tierPolicies: viewerProcedure.query(({ ctx }) => ctx.services.system.tierPolicies()),
});

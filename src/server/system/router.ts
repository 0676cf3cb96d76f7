import { publicProcedure, router, viewerProcedure } from "../trpc.js";

export const systemRouter = router({
  health: publicProcedure.query(({ ctx }) => ctx.services.system.health()),
  whoami: viewerProcedure.query(({ ctx }) => ctx.actor),
});

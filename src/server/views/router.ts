import { z } from "zod";
import { savedViewInputSchema } from "../../shared/task-list.js";
import { clientInfo } from "../auth/request.js";
import { router, viewerProcedure } from "../trpc.js";

// Saved views belong to their owner and change nothing else, so a viewer may keep them too.
export const viewsRouter = router({
  list: viewerProcedure.query(({ ctx }) => ctx.services.views.list(ctx.actor)),
  save: viewerProcedure
    .input(savedViewInputSchema)
    .mutation(({ ctx, input }) =>
      ctx.services.views.save(ctx.actor, input.name, input.filter, clientInfo(ctx.clientAddress, ctx.request)),
    ),
  delete: viewerProcedure
    .input(z.object({ id: z.uuid({ error: "View id must be a UUID" }) }))
    .mutation(({ ctx, input }) =>
      ctx.services.views.delete(ctx.actor, input.id, clientInfo(ctx.clientAddress, ctx.request)),
    ),
});

import { auditListInputSchema } from "../../shared/audit.js";
import { router, viewerProcedure } from "../trpc.js";

// Read-only by design: the trail has no mutation procedure.
export const auditRouter = router({
  list: viewerProcedure.input(auditListInputSchema).query(({ ctx, input }) => ctx.services.audit.list(input)),
});

import { z } from "zod";
import { webhookCreateSchema, webhookPatchSchema } from "../../shared/webhooks.js";
import { callerOf as caller } from "../audit/trail.js";
import { adminProcedure, router } from "../trpc.js";

const webhookId = z.uuid({ error: "Webhook id must be a UUID" });
const deliveryId = z.uuid({ error: "Delivery id must be a UUID" });

/** Webhook endpoints and their delivery log: admins only (they see where events go and can send them again). */
export const webhooksRouter = router({
  list: adminProcedure.query(({ ctx }) => ctx.services.webhooks.list()),

  get: adminProcedure.input(z.object({ id: webhookId })).query(({ ctx, input }) => ctx.services.webhooks.get(input.id)),

  /** Answers the signing secret (`whsec_…`) once; it is never shown again. */
  create: adminProcedure
    .input(webhookCreateSchema)
    .mutation(({ ctx, input }) => ctx.services.webhooks.create(caller(ctx), input)),

  update: adminProcedure
    .input(z.object({ id: webhookId, patch: webhookPatchSchema }))
    .mutation(({ ctx, input }) => ctx.services.webhooks.update(caller(ctx), input.id, input.patch)),

  remove: adminProcedure
    .input(z.object({ id: webhookId }))
    .mutation(({ ctx, input }) => ctx.services.webhooks.remove(caller(ctx), input.id)),

  /** A new signing secret, answered once; the old one stops signing at once. */
  rotateSecret: adminProcedure
    .input(z.object({ id: webhookId }))
    .mutation(({ ctx, input }) => ctx.services.webhooks.rotateSecret(caller(ctx), input.id)),

  deliveries: adminProcedure
    .input(
      z.object({
        endpointId: webhookId,
        cursor: deliveryId.optional(),
        limit: z.number().int().min(1).max(200).default(50),
      }),
    )
    .query(({ ctx, input }) => ctx.services.webhooks.deliveries(input)),

  replay: adminProcedure
    .input(z.object({ deliveryId }))
    .mutation(({ ctx, input }) => ctx.services.webhooks.replay(caller(ctx), input.deliveryId)),

  sendTest: adminProcedure
    .input(z.object({ id: webhookId }))
    .mutation(({ ctx, input }) => ctx.services.webhooks.sendTest(caller(ctx), input.id)),
});

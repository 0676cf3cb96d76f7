import { tracked } from "@trpc/server";
import { z } from "zod";
import {
  chatEventIdSchema,
  createSessionInputSchema,
  messagesInputSchema,
  renameSessionInputSchema,
  sendInputSchema,
  sessionIdSchema,
} from "../../shared/chat.js";
import { operatorProcedure, router, viewerProcedure } from "../trpc.js";

export const chatRouter = router({
  sessions: router({
    list: viewerProcedure
      .input(z.object({ includeEnded: z.boolean().default(false) }).default({ includeEnded: false }))
      .query(({ ctx, input }) => ctx.services.chat.listSessions(input)),
    get: viewerProcedure
      .input(z.object({ sessionId: sessionIdSchema }))
      .query(({ ctx, input }) => ctx.services.chat.getSession(input.sessionId)),
    create: operatorProcedure
      .input(createSessionInputSchema)
      .mutation(({ ctx, input }) => ctx.services.chat.createSession(ctx.actor, input)),
    rename: operatorProcedure
      .input(renameSessionInputSchema)
      .mutation(({ ctx, input }) => ctx.services.chat.renameSession(ctx.actor, input)),
    end: operatorProcedure
      .input(z.object({ sessionId: sessionIdSchema }))
      .mutation(({ ctx, input }) => ctx.services.chat.endSession(ctx.actor, input.sessionId)),
  }),

  messages: viewerProcedure.input(messagesInputSchema).query(({ ctx, input }) => ctx.services.chat.messages(input)),

  send: operatorProcedure.input(sendInputSchema).mutation(({ ctx, input }) => ctx.services.chat.send(ctx.actor, input)),

  /** Every message of the session changed after `lastEventId` (a version), then live; tracked by version. */
  onMessage: viewerProcedure
    .input(z.object({ sessionId: sessionIdSchema, lastEventId: chatEventIdSchema.nullish() }))
    .subscription(async function* ({ ctx, input, signal }) {
      for await (const m of ctx.services.chat.onMessage({ ...input, signal })) yield tracked(m.version, m);
    }),

  typing: operatorProcedure.input(z.object({ sessionId: sessionIdSchema })).mutation(async ({ ctx, input }) => {
    await ctx.services.chat.typing(ctx.actor, input.sessionId);
    return { ok: true as const };
  }),

  onTyping: viewerProcedure.input(z.object({ sessionId: sessionIdSchema })).subscription(async function* ({
    ctx,
    input,
    signal,
  }) {
    yield* ctx.services.chat.onTyping({ sessionId: input.sessionId, self: ctx.actor.id, signal });
  }),
});

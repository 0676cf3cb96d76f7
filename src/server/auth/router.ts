import { TRPCError } from "@trpc/server";
import {
  changePasswordInputSchema,
  signInInputSchema,
  tokenCreateInputSchema,
  tokenIdInputSchema,
  tokenListInputSchema,
  userCreateInputSchema,
  userIdInputSchema,
  userUpdateInputSchema,
} from "../../shared/auth.js";
import type { Actor } from "../../shared/roles.js";
import { adminProcedure, ownPasswordProcedure, publicProcedure, router, viewerProcedure } from "../trpc.js";
import { clearedSessionCookie, sessionCookie } from "./cookies.js";
import { clientInfo, type RequestContext } from "./request.js";
import type { Caller } from "./service.js";

const caller = (ctx: { actor: Actor; clientAddress: string | null; request?: RequestContext }): Caller => ({
  actor: ctx.actor,
  client: clientInfo(ctx.clientAddress, ctx.request),
  ...(ctx.request ? { credentials: ctx.request.credentials } : {}),
});

export const authRouter = router({
  signIn: publicProcedure.input(signInInputSchema).mutation(async ({ ctx, input }) => {
    const setCookie = ctx.request?.setCookie;
    if (!setCookie) {
      throw new TRPCError({
        code: "BAD_REQUEST",
        message: "Sign in over HTTP: a WebSocket connection authenticates with the session cookie or an API token.",
      });
    }
    const { sessionToken, user, expiresAt } = await ctx.services.auth.signIn(
      input.username,
      input.password,
      clientInfo(ctx.clientAddress, ctx.request),
    );
    setCookie(sessionCookie(sessionToken, ctx.services.auth.sessionTtlSeconds, ctx.request?.secure ?? false));
    return { user, expiresAt };
  }),
  signOut: publicProcedure.mutation(async ({ ctx }) => {
    if (ctx.actor && ctx.request)
      await ctx.services.auth.signOut(ctx.request.credentials, caller({ ...ctx, actor: ctx.actor }));
    ctx.request?.setCookie?.(clearedSessionCookie(ctx.request.secure));
    return { signedOut: true };
  }),
  /** Null when nobody is signed in, so the console knows to show the sign-in page. */
  me: publicProcedure.query(({ ctx }) => (ctx.request ? ctx.services.auth.me(ctx.request.credentials) : null)),
  /** Ends the user's other sessions; open while the password must be changed. */
  changePassword: ownPasswordProcedure
    .input(changePasswordInputSchema)
    .mutation(({ ctx, input }) =>
      ctx.services.auth
        .changePassword(caller(ctx), input.currentPassword, input.newPassword)
        .then((r) => ({ changed: true, endedSessions: r.endedSessions })),
    ),
});

export const usersRouter = router({
  list: adminProcedure.query(({ ctx }) => ctx.services.auth.listUsers()),
  create: adminProcedure
    .input(userCreateInputSchema)
    .mutation(({ ctx, input }) => ctx.services.auth.createUser(caller(ctx), input)),
  update: adminProcedure
    .input(userUpdateInputSchema)
    .mutation(({ ctx, input }) => ctx.services.auth.updateUser(caller(ctx), input)),
  disable: adminProcedure
    .input(userIdInputSchema)
    .mutation(({ ctx, input }) => ctx.services.auth.disableUser(caller(ctx), input.id)),
  /** A generated temporary password, shown once; the user must change it at next sign-in. */
  resetPassword: adminProcedure
    .input(userIdInputSchema)
    .mutation(({ ctx, input }) => ctx.services.auth.resetPassword(caller(ctx), input.id)),
  endSessions: adminProcedure
    .input(userIdInputSchema)
    .mutation(({ ctx, input }) => ctx.services.auth.endSessions(caller(ctx), input.id)),
});

// Everyone signed in manages their own tokens; `all` (admin) lists everyone's, and admins may revoke any.
export const tokensRouter = router({
  list: viewerProcedure
    .input(tokenListInputSchema)
    .query(({ ctx, input }) => ctx.services.auth.listTokens(caller(ctx), input.all)),
  create: viewerProcedure
    .input(tokenCreateInputSchema)
    .mutation(({ ctx, input }) => ctx.services.auth.createToken(caller(ctx), input.name, input.expiresInDays)),
  revoke: viewerProcedure
    .input(tokenIdInputSchema)
    .mutation(({ ctx, input }) => ctx.services.auth.revokeToken(caller(ctx), input.id)),
});

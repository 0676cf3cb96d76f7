import { initTRPC, TRPCError } from "@trpc/server";
import { ZodError } from "zod";
import { type Actor, hasRole, type Role } from "../shared/roles.js";
import { jsonProblem, MAX_REQUEST_DEPTH } from "../shared/text.js";
import type { RequestContext } from "./auth/request.js";
import { SignInDelayedError } from "./auth/service.js";
import { DomainError } from "./errors.js";
import { errorIdOf, hidesDetail, publicMessage } from "./lib/public-errors.js";
import { sharedSuperjson } from "./lib/shared-serialization.js";
import { validationMessage } from "./lib/validation-message.js";
import type { Services } from "./services.js";

export interface Context {
  /** Who is calling; null once sign-in exists and nobody is signed in. */
  actor: Actor | null;
  services: Services;
  clientAddress: string | null;
  /** A session whose password an admin set: only changing it, signing out and public procedures are open. */
  passwordChangeRequired?: boolean;
  /** Credentials, user agent and (over HTTP) the response cookie; absent for in-process callers. */
  request?: RequestContext;
}

/**
 * Every request's input (HTTP or WebSocket) is measured before superjson walks it: its walk, and
 * later ones, recurse, so input nested thousands of levels deep would end in "Maximum call stack
 * size exceeded". The depth is checked without recursion and refused with a message.
 */
const boundedInput = {
  serialize: (value: unknown) => sharedSuperjson.serialize(value),
  deserialize(value: unknown) {
    const problem = jsonProblem(value, { maxDepth: MAX_REQUEST_DEPTH });
    if (problem) {
      throw new TRPCError({
        code: "BAD_REQUEST",
        message: `The request is nested too deeply: objects and arrays at most ${MAX_REQUEST_DEPTH} levels deep.`,
      });
    }
    return sharedSuperjson.deserialize(value);
  },
};

const t = initTRPC.context<Context>().create({
  // superjson; a feed item marked shared is serialized once for all its subscribers.
  transformer: { input: boundedInput, output: sharedSuperjson },
  errorFormatter({ shape, error }) {
    // Stack traces stay in the server log; validation errors name each field and say what is wrong.
    const { stack: _stack, ...data } = shape.data;
    // A database or ORM error (or any we did not throw on purpose) is logged with this id (app.ts);
    // the client gets the id and never the error's own text, stack or file paths.
    if (hidesDetail(error)) {
      return {
        ...shape,
        message: publicMessage(error),
        data: { ...data, errorId: errorIdOf(error), fieldErrors: null },
      };
    }
    const zod = error.cause instanceof ZodError ? error.cause : null;
    const retryAfterMs = error instanceof SignInDelayedError ? error.retryAfterMs : undefined;
    if (!zod) return { ...shape, data: { ...data, fieldErrors: null, ...(retryAfterMs ? { retryAfterMs } : {}) } };
    return {
      ...shape,
      message: validationMessage(zod.issues),
      data: { ...data, fieldErrors: zod.issues.map((i) => ({ path: i.path.map(String), message: i.message })) },
    };
  },
});

export const router = t.router;

/** Domain errors thrown by services become tRPC errors with their code and message. */
const domainErrors = t.middleware(async ({ next }) => {
  const result = await next();
  if (!result.ok && result.error.cause instanceof DomainError) {
    throw new TRPCError({ code: result.error.cause.code, message: result.error.cause.message });
  }
  return result;
});

/**
 * Times every query and mutation, role checks and refusals included, into the per-procedure request
 * histogram of /metrics. A subscription's call only sets it up, so it is not timed.
 */
const timed = t.procedure.use(async ({ ctx, path, type, next }) => {
  if (type === "subscription") return next();
  const started = performance.now();
  const result = await next();
  const code = result.ok ? "OK" : result.error.code;
  ctx.services.metrics.prom.request(path, type, code, (performance.now() - started) / 1000);
  return result;
});

function requireRole(role: Role, opts: { whilePasswordChangeRequired?: boolean } = {}) {
  return timed.use(domainErrors).use(({ ctx, next }) => {
    if (!ctx.actor) throw new TRPCError({ code: "UNAUTHORIZED", message: "Sign in first." });
    if (ctx.passwordChangeRequired && !opts.whilePasswordChangeRequired) {
      throw new TRPCError({
        code: "FORBIDDEN",
        message:
          "Your password was set by an administrator: choose your own (auth.changePassword) before anything else.",
      });
    }
    if (!hasRole(ctx.actor.role, role)) {
      throw new TRPCError({
        code: "FORBIDDEN",
        message: `This needs the ${role} role; ${ctx.actor.name} is ${ctx.actor.role}.`,
      });
    }
    return next({ ctx: { ...ctx, actor: ctx.actor } });
  });
}

/** Read-only procedures. */
export const viewerProcedure = requireRole("viewer");
/** Changing one's own password: open to a session that must do so before anything else. */
export const ownPasswordProcedure = requireRole("viewer", { whilePasswordChangeRequired: true });
/** Submit, cancel, retry, chat. */
export const operatorProcedure = requireRole("operator");
/** Workers, users, overrides, breakers. */
export const adminProcedure = requireRole("admin");
/** Health only: open to anyone who can reach the port. */
export const publicProcedure = timed.use(domainErrors);

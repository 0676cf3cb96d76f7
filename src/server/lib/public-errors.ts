import { randomBytes } from "node:crypto";
import type { TRPCError } from "@trpc/server";
import { ZodError } from "zod";
import { DomainError } from "../errors.js";

const ids = new WeakMap<object, string>();

/** A short id for one failure, the same in what a client or a task is told and in the server's log line about it. */
export const newErrorId = () => randomBytes(6).toString("hex");

/** The id of this error (one per error object, however often asked). */
export function errorIdOf(error: object): string {
  let id = ids.get(error);
  if (!id) {
    id = newErrorId();
    ids.set(error, id);
  }
  return id;
}

/**
 * Whether an error's message must stay in the server log: anything we did not throw on purpose.
 * tRPC wraps an unknown error (a Prisma or Postgres error, a TypeError of ours) in a TRPCError that
 * borrows its message; a TRPCError we throw carries its own message and no cause, a validation
 * error a ZodError, a service's refusal a DomainError.
 */
export function hidesDetail(error: TRPCError): boolean {
  const cause = error.cause;
  if (cause instanceof ZodError || cause instanceof DomainError) return false;
  if (error.code === "INTERNAL_SERVER_ERROR") return true;
  // The request body's own JSON syntax error describes the client's input, nothing of ours.
  if (cause instanceof SyntaxError) return false;
  return cause !== undefined && cause.name !== "TRPCError" && error.message === cause.message;
}

/** What a client is told instead of an internal error's own message. */
export function publicMessage(error: TRPCError): string {
  const id = errorIdOf(error);
  return error.code === "INTERNAL_SERVER_ERROR"
    ? `Internal error ${id}: the server could not complete this request. Its log has the detail under this id.`
    : `The request could not be processed (error ${id}). The server's log has the detail under this id.`;
}

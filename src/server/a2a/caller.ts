import type { ServerCallContext, User } from "@a2a-js/sdk/server";
import type { Actor } from "../../shared/roles.js";
import type { TaskSpec } from "../../shared/task-spec.js";
import type { ClientInfo } from "../audit/service.js";

/** The A2A SDK's user, carrying the agency's actor: every task change is made as this caller, under its role. */
export class AgencyUser implements User {
  constructor(
    readonly actor: Actor,
    readonly client: ClientInfo,
  ) {}

  get isAuthenticated(): boolean {
    return true;
  }

  get userName(): string {
    return this.actor.id;
  }
}

const SIGNAL = "agency.signal";
const SPEC = "agency.pendingTask";

/** The caller of a request that reached the handler (the HTTP layer admits no anonymous one). */
export function callerOf(context: ServerCallContext): AgencyUser {
  const user = context.user;
  if (!(user instanceof AgencyUser)) throw new Error("An A2A request reached the handler without an agency caller.");
  return user;
}

/** Aborts when the request's client has gone (or the server stops): the work done for it stops following the task. */
export function setRequestSignal(context: ServerCallContext, signal: AbortSignal): void {
  context.state.set(SIGNAL, signal);
}

export function requestSignal(context: ServerCallContext): AbortSignal {
  const signal = context.state.get(SIGNAL);
  return signal instanceof AbortSignal ? signal : new AbortController().signal;
}

/** What the handler made of a message that starts a task (checked before the SDK runs anything), for the executor. */
export interface PendingTask {
  spec: TaskSpec;
  /** The context the client named in the message; empty when it named none. */
  contextId: string;
}

export function setPendingTask(context: ServerCallContext, pending: PendingTask): void {
  context.state.set(SPEC, pending);
}

export function pendingTask(context: ServerCallContext): PendingTask | undefined {
  return context.state.get(SPEC) as PendingTask | undefined;
}

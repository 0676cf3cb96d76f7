import type {
  AgentCard,
  CancelTaskRequest,
  DeleteTaskPushNotificationConfigRequest,
  GetExtendedAgentCardRequest,
  GetTaskPushNotificationConfigRequest,
  GetTaskRequest,
  ListTaskPushNotificationConfigsRequest,
  ListTaskPushNotificationConfigsResponse,
  ListTasksRequest,
  ListTasksResponse,
  Message,
  SendMessageRequest,
  StreamResponse,
  SubscribeToTaskRequest,
  Task,
  TaskPushNotificationConfig,
} from "@a2a-js/sdk";
import { TaskState as A2AState } from "@a2a-js/sdk";
import {
  A2AError,
  JsonRpcTransportError,
  RequestMalformedError,
  TaskNotCancelableError,
  TaskNotFoundError,
  UnsupportedOperationError,
} from "@a2a-js/sdk/errors";
import type {
  A2ARequestHandler,
  AgentExecutionEvent,
  DefaultRequestHandler,
  ServerCallContext,
} from "@a2a-js/sdk/server";
import { z } from "zod";
import { hasRole, type Role } from "../../shared/roles.js";
import { IllegalTransitionError } from "../../shared/task-state.js";
import { safeText } from "../../shared/text.js";
import { DomainError } from "../errors.js";
import { newErrorId } from "../lib/public-errors.js";
import type { Logger } from "../logger.js";
import { callerOf, requestSignal, setPendingTask } from "./caller.js";
import { type FollowDeps, followTask } from "./follow.js";
import { A2A_STATE_OF, a2aStateName, specFromMessage } from "./mapping.js";

/** JSON-RPC error codes of the agency's own (outside the A2A range -32001…-32009). */
export const AGENCY_RPC_ERROR = {
  /** No credentials, or ones that are not valid (also HTTP 401). */
  UNAUTHENTICATED: -32040,
  /** The caller's role is not enough for the method (a viewer sending a message, say). */
  FORBIDDEN: -32041,
} as const;

const CANCEL_REASON = safeText(
  z
    .string({ error: "The cancel reason (metadata.reason) must be text" })
    .trim()
    .min(1, "The cancel reason (metadata.reason) must not be empty")
    .max(500, "The cancel reason (metadata.reason) must be at most 500 characters"),
);

/** The longest contextId a client may name (the column's width). */
const CONTEXT_ID_MAX = 200;

export function forbidden(message: string): A2AError {
  return new JsonRpcTransportError({ jsonrpc: "2.0", id: null, error: { code: AGENCY_RPC_ERROR.FORBIDDEN, message } });
}

/**
 * The agency's A2A request handler: the SDK's DefaultRequestHandler (message routing, the event queue,
 * the result manager, the agency task store) with what the agency adds around it:
 * - roles: sending a message and canceling need an operator, reading a viewer (as tasks.create,
 *   tasks.cancel and tasks.get do);
 * - a message is turned into a task spec and checked before anything runs, so bad input gets a clear
 *   error and creates nothing;
 * - a message to an existing task is taken only when the task waits in input-required;
 * - cancel is tasks.cancel as the caller; SubscribeToTask follows any agency task from the database
 *   (not only those with a request open in this process);
 * - an error the agency did not raise on purpose reaches the client as `Internal error <id>`, its
 *   detail in the server log.
 */
export class AgencyRequestHandler implements A2ARequestHandler {
  constructor(
    private readonly inner: DefaultRequestHandler,
    private readonly deps: FollowDeps,
    private readonly card: () => Promise<AgentCard>,
    private readonly log: Logger,
  ) {}

  getAgentCard(): Promise<AgentCard> {
    return this.card();
  }

  getAuthenticatedExtendedAgentCard(params: GetExtendedAgentCardRequest, context: ServerCallContext) {
    return this.guard(() => this.inner.getAuthenticatedExtendedAgentCard(params, context));
  }

  async sendMessage(params: SendMessageRequest, context: ServerCallContext): Promise<Message | Task> {
    return this.guard(async () => {
      await this.admitMessage(params, context);
      const result = await this.inner.sendMessage(params, context);
      // The answer is the task as tasks/get reads it (the SDK's copy also lists the status messages it saw).
      return "status" in result ? ((await this.deps.store.a2aTask(result.id)) ?? result) : result;
    });
  }

  async *sendMessageStream(params: SendMessageRequest, context: ServerCallContext): AsyncGenerator<StreamResponse> {
    await this.guard(() => this.admitMessage(params, context));
    yield* this.guardStream(this.inner.sendMessageStream(params, context));
  }

  getTask(params: GetTaskRequest, context: ServerCallContext): Promise<Task> {
    return this.guard(async () => {
      this.need(context, "viewer", "read a task");
      return this.inner.getTask(params, context);
    });
  }

  listTasks(params: ListTasksRequest, context: ServerCallContext): Promise<ListTasksResponse> {
    return this.guard(async () => {
      this.need(context, "viewer", "list tasks");
      return this.inner.listTasks(params, context);
    });
  }

  /** tasks.cancel as the caller: the task goes to canceling, the worker is told, and the task ends canceled. */
  cancelTask(params: CancelTaskRequest, context: ServerCallContext): Promise<Task> {
    return this.guard(async () => {
      const caller = this.need(context, "operator", "cancel a task");
      const task = await this.deps.store.agencyTask(params.id);
      if (!task) throw new TaskNotFoundError(`Task ${params.id} does not exist.`);
      if (task.state === "canceled") return this.current(task.id);
      const given = params.metadata?.reason;
      const reason = CANCEL_REASON.safeParse(given ?? `Canceled through A2A by ${caller.actor.name}`);
      if (!reason.success) throw new RequestMalformedError(reason.error.issues[0]?.message ?? "Invalid reason");
      try {
        await this.deps.tasks.cancel(caller.actor, task.id, reason.data, caller.client);
      } catch (err) {
        if (err instanceof IllegalTransitionError || (err instanceof DomainError && err.code !== "NOT_FOUND")) {
          throw new TaskNotCancelableError(`Task ${task.id} cannot be canceled: ${err.message}`);
        }
        throw err;
      }
      return this.current(task.id);
    });
  }

  /** Follows any agency task from its current state, from the database: after a restart, on any process. */
  async *resubscribe(params: SubscribeToTaskRequest, context: ServerCallContext): AsyncGenerator<StreamResponse> {
    const task = await this.guard(async () => {
      this.need(context, "viewer", "follow a task");
      const found = await this.deps.store.agencyTask(params.id);
      if (!found) throw new TaskNotFoundError(`Task ${params.id} does not exist.`);
      const state = A2A_STATE_OF[found.state];
      if (
        state === A2AState.TASK_STATE_COMPLETED ||
        state === A2AState.TASK_STATE_FAILED ||
        state === A2AState.TASK_STATE_CANCELED
      ) {
        throw new UnsupportedOperationError(
          `Task ${found.id} has ended (${a2aStateName(state)}; agency state ${found.state}) and has nothing more to stream: read it with GetTask (tasks/get).`,
        );
      }
      return found;
    });
    yield* this.guardStream(mapEvents(followTask(this.deps, task.id, requestSignal(context))));
  }

  createTaskPushNotificationConfig(params: TaskPushNotificationConfig, context: ServerCallContext) {
    return this.guard(async () => {
      this.need(context, "operator", "set push notifications");
      return this.inner.createTaskPushNotificationConfig(params, context);
    });
  }

  getTaskPushNotificationConfig(params: GetTaskPushNotificationConfigRequest, context: ServerCallContext) {
    return this.guard(() => this.inner.getTaskPushNotificationConfig(params, context));
  }

  listTaskPushNotificationConfigs(
    params: ListTaskPushNotificationConfigsRequest,
    context: ServerCallContext,
  ): Promise<ListTaskPushNotificationConfigsResponse> {
    return this.guard(() => this.inner.listTaskPushNotificationConfigs(params, context));
  }

  deleteTaskPushNotificationConfig(params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext) {
    return this.guard(async () => {
      this.need(context, "operator", "delete push notifications");
      return this.inner.deleteTaskPushNotificationConfig(params, context);
    });
  }

  /**
   * What a message must be before the SDK runs anything with it: from an operator; a new task's spec
   * valid; or, naming a task, one that waits for input (the council requested changes).
   */
  private async admitMessage(params: SendMessageRequest, context: ServerCallContext): Promise<void> {
    this.need(context, "operator", "send a message (it creates a task)");
    const message = params.message;
    if (!message) throw new RequestMalformedError("The request has no message.");
    if (message.taskId) {
      const task = await this.deps.store.agencyTask(message.taskId);
      if (!task) throw new TaskNotFoundError(`Task ${message.taskId} does not exist.`);
      if (task.state !== "changes_requested") {
        throw new UnsupportedOperationError(
          `Task ${task.id} is ${a2aStateName(A2A_STATE_OF[task.state])} (agency state ${task.state}): the agency takes a message to a task only while it waits for input (the council requested changes). Send a message without taskId to start a new task.`,
        );
      }
      return;
    }
    if (message.contextId.length > CONTEXT_ID_MAX) {
      throw new RequestMalformedError(`contextId must be at most ${CONTEXT_ID_MAX} characters.`);
    }
    const made = specFromMessage(message);
    if (!made.ok) throw new RequestMalformedError(made.error);
    setPendingTask(context, { spec: made.spec, contextId: message.contextId });
  }

  private async current(taskId: string): Promise<Task> {
    const task = await this.deps.store.a2aTask(taskId);
    if (!task) throw new TaskNotFoundError(`Task ${taskId} does not exist.`);
    return task;
  }

  private need(context: ServerCallContext, role: Role, what: string) {
    const caller = callerOf(context);
    if (!hasRole(caller.actor.role, role)) {
      throw forbidden(
        `Only ${article(role)} ${role} or above may ${what}; ${caller.actor.id} is ${article(caller.actor.role)} ${caller.actor.role}.`,
      );
    }
    return caller;
  }

  /** Errors the agency raised on purpose pass as they are; anything else is logged and answered by its id. */
  private sanitize(err: unknown): unknown {
    if (err instanceof A2AError) return err;
    const errorId = newErrorId();
    this.log.error({ err, errorId }, "A2A request failed");
    return new A2AError(
      `Internal error ${errorId}: the server could not complete this request. Its log has the detail under this id.`,
    );
  }

  private async guard<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      throw this.sanitize(err);
    }
  }

  private async *guardStream(stream: AsyncGenerator<StreamResponse>): AsyncGenerator<StreamResponse> {
    try {
      yield* stream;
    } catch (err) {
      throw this.sanitize(err);
    }
  }
}

const article = (role: Role) => (role === "viewer" ? "a" : "an");

async function* mapEvents(events: AsyncGenerator<AgentExecutionEvent>): AsyncGenerator<StreamResponse> {
  for await (const e of events) {
    if (e.kind === "task") yield { payload: { $case: "task", value: e.data } };
    else if (e.kind === "statusUpdate") yield { payload: { $case: "statusUpdate", value: e.data } };
    else if (e.kind === "artifactUpdate") yield { payload: { $case: "artifactUpdate", value: e.data } };
  }
}

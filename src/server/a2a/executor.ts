import { Role } from "@a2a-js/sdk";
import { TaskNotCancelableError } from "@a2a-js/sdk/errors";
import { AgentEvent, type AgentExecutor, type ExecutionEventBus, type RequestContext } from "@a2a-js/sdk/server";
import { IllegalTransitionError } from "../../shared/task-state.js";
import { DomainError } from "../errors.js";
import { newErrorId } from "../lib/public-errors.js";
import type { Logger } from "../logger.js";
import { callerOf, pendingTask, requestSignal } from "./caller.js";
import { type FollowDeps, followTask } from "./follow.js";
import { textPart } from "./mapping.js";

/**
 * The agency as an A2A agent: a message creates an agency task as the caller (or, to a task waiting in
 * input-required, asks for another attempt), then the task is followed and each change is published on
 * the request's event bus until it ends, reaches input-required, or the request's client goes away.
 * The work itself is the agency's: dispatched, run, judged and audited as every other task.
 */
export class AgencyAgentExecutor implements AgentExecutor {
  constructor(
    private readonly deps: FollowDeps,
    private readonly log: Logger,
  ) {}

  async execute(request: RequestContext, bus: ExecutionEventBus): Promise<void> {
    const caller = callerOf(request.context);
    let taskId: string;
    try {
      if (request.task) {
        await this.deps.tasks.retry(caller.actor, request.task.id, caller.client);
        taskId = request.task.id;
      } else {
        const pending = pendingTask(request.context);
        if (!pending) throw new Error("The A2A handler did not leave a task spec for the executor.");
        taskId = (await this.deps.tasks.create(caller.actor, pending.spec, caller.client)).id;
        if (pending.contextId) await this.recordContext(taskId, pending.contextId);
      }
    } catch (err) {
      // Nothing was published yet: the answer is a message saying why, not a task in a state it is not in.
      bus.publish(AgentEvent.message(this.refusal(request, err)));
      return;
    }
    try {
      for await (const event of followTask(this.deps, taskId, requestSignal(request.context))) bus.publish(event);
    } catch (err) {
      // The task exists and goes on; only this request stops following it (tasks/get and SubscribeToTask still can).
      this.log.error({ err, taskId, errorId: newErrorId() }, "A2A: following a task failed");
    }
  }

  /**
   * Canceling is done by AgencyRequestHandler.cancelTask as the caller (role, reason, audit trail), which
   * the executor, given only a task id, cannot act as.
   */
  async cancelTask(taskId: string, _bus: ExecutionEventBus): Promise<void> {
    throw new TaskNotCancelableError(
      `Task ${taskId} is canceled through tasks/cancel (CancelTask), which acts as the caller; the agent executor does not cancel on its own.`,
    );
  }

  /**
   * The task exists once created, whatever happens here: a context that could not be recorded is logged,
   * and the task answers as its own context rather than being reported as not created.
   */
  private async recordContext(taskId: string, contextId: string): Promise<void> {
    try {
      await this.deps.store.recordContext(taskId, contextId);
    } catch (err) {
      this.log.error({ err, taskId, errorId: newErrorId() }, "A2A: the task's context could not be recorded");
    }
  }

  private refusal(request: RequestContext, err: unknown) {
    let text: string;
    if (err instanceof DomainError || err instanceof IllegalTransitionError) {
      text = request.task ? `Task ${request.task.id} was not retried: ${err.message}` : err.message;
    } else {
      const errorId = newErrorId();
      this.log.error({ err, errorId }, "A2A: the task could not be created or retried");
      text = `Internal error ${errorId}: the agency could not take this message. Its log has the detail under this id.`;
    }
    return {
      messageId: crypto.randomUUID(),
      contextId: request.contextId,
      taskId: request.task?.id ?? "",
      role: Role.ROLE_AGENT,
      parts: [textPart(text)],
      metadata: undefined,
      extensions: [],
      referenceTaskIds: [],
    };
  }
}

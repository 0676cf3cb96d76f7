import type { Task as A2ATask, ListTasksRequest, ListTasksResponse } from "@a2a-js/sdk";
import { TaskState as A2AState } from "@a2a-js/sdk";
import { RequestMalformedError, TaskNotFoundError, UnsupportedOperationError } from "@a2a-js/sdk/errors";
import type { ServerCallContext, TaskStore } from "@a2a-js/sdk/server";
import { taskFilterSchema } from "../../shared/task-list.js";
import { DomainError } from "../errors.js";
import type { TaskService } from "../tasks/service.js";
import { type AgencyTask, agencyStatesOf, toA2ATask } from "./mapping.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The A2A TaskStore over the agency's own tasks: an A2A task is an agency task, read through the tasks
 * service, so `tasks/get` answers from the database after a restart, on any process, for tasks made
 * through A2A or anywhere else. Every field of the A2A task is derived from the agency's rows (see
 * mapping.ts); the only writer of those rows is the tasks service, under the caller's role.
 */
export class AgencyTaskStore implements TaskStore {
  constructor(private readonly tasks: TaskService) {}

  /** The agency task, or undefined when there is none by that id. */
  async agencyTask(taskId: string): Promise<AgencyTask | undefined> {
    if (!UUID.test(taskId)) return undefined;
    try {
      return await this.tasks.get(taskId);
    } catch (err) {
      if (err instanceof DomainError && err.code === "NOT_FOUND") return undefined;
      throw err;
    }
  }

  async load(taskId: string, _context: ServerCallContext): Promise<A2ATask | undefined> {
    const task = await this.agencyTask(taskId);
    return task ? toA2ATask(task) : undefined;
  }

  /**
   * The request handler saves its merged view of a task after each event. That view is made from the
   * agency's rows (load), and everything in it that changes is changed by the tasks service through the
   * state machine, never by overwriting the row with a view. So a save only checks that the task is an
   * agency task: a task the agency does not have cannot be brought into being through the store.
   */
  async save(task: A2ATask, _context: ServerCallContext): Promise<void> {
    if (!(await this.agencyTask(task.id))) {
      throw new TaskNotFoundError(`Task ${task.id} is not an agency task; tasks are created by message/send.`);
    }
  }

  /** Newest first, by the agency's task list (its cursor is the page token); `contextId` is a task's id. */
  async list(params: ListTasksRequest, _context: ServerCallContext): Promise<ListTasksResponse> {
    const pageSize = params.pageSize ?? 50;
    if (params.statusTimestampAfter) {
      throw new UnsupportedOperationError(
        "ListTasks does not filter by statusTimestampAfter here: leave it out (tasks come newest first), or use the agency's tasks.list with a created range.",
      );
    }
    if (params.contextId) {
      const task = await this.agencyTask(params.contextId);
      const matches =
        task !== undefined &&
        (params.status === A2AState.TASK_STATE_UNSPECIFIED || agencyStatesOf(params.status).includes(task.state));
      return {
        tasks: matches ? [this.listed(task, params)] : [],
        nextPageToken: "",
        pageSize,
        totalSize: matches ? 1 : 0,
      };
    }
    const states = params.status === A2AState.TASK_STATE_UNSPECIFIED ? undefined : agencyStatesOf(params.status);
    if (states?.length === 0) throw new RequestMalformedError(`No agency task is ever in status ${params.status}.`);
    const filter = taskFilterSchema.parse({ sort: "created_desc", ...(states ? { states } : {}) });
    let page: Awaited<ReturnType<TaskService["list"]>>;
    try {
      page = await this.tasks.list(filter, pageSize, params.pageToken || null);
    } catch (err) {
      if (err instanceof DomainError) throw new RequestMalformedError(`pageToken: ${err.message}`);
      throw err;
    }
    const tasks: A2ATask[] = [];
    for (const summary of page.items) {
      const task = await this.agencyTask(summary.id);
      if (task) tasks.push(this.listed(task, params));
    }
    return { tasks, nextPageToken: page.nextCursor ?? "", pageSize, totalSize: await this.tasks.count(filter) };
  }

  private listed(task: AgencyTask, params: ListTasksRequest): A2ATask {
    const a2a = toA2ATask(task);
    return params.includeArtifacts ? a2a : { ...a2a, artifacts: [] };
  }
}

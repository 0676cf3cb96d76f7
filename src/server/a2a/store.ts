import type { Task as A2ATask, ListTasksRequest, ListTasksResponse } from "@a2a-js/sdk";
import { TaskState as A2AState } from "@a2a-js/sdk";
import { RequestMalformedError, TaskNotFoundError, UnsupportedOperationError } from "@a2a-js/sdk/errors";
import type { ServerCallContext, TaskStore } from "@a2a-js/sdk/server";
import { taskFilterSchema } from "../../shared/task-list.js";
import type { TaskState } from "../../shared/task-state.js";
import type { Database } from "../db/database.js";
import { DomainError } from "../errors.js";
import type { TaskService } from "../tasks/service.js";
import { type AgencyTask, agencyStatesOf, toA2ATask } from "./mapping.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The A2A TaskStore over the agency's own tasks: an A2A task is an agency task, read through the tasks
 * service, so `tasks/get` answers from the database after a restart, on any process, for tasks made
 * through A2A or anywhere else. Every field of the A2A task is derived from the agency's rows (see
 * mapping.ts), and its contextId from `a2a_task_contexts` (the task's own id when it has no row there).
 */
export class AgencyTaskStore implements TaskStore {
  constructor(
    private readonly db: Database,
    private readonly tasks: TaskService,
  ) {}

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

  /** The context the task was created in, or its own id. */
  async contextOf(taskId: string): Promise<string> {
    const row = await this.db.prisma.a2aTaskContext.findUnique({ where: { taskId }, select: { contextId: true } });
    return row?.contextId ?? taskId;
  }

  /** Records the context a client named for the task it created (once; a task's context never changes). */
  async recordContext(taskId: string, contextId: string): Promise<void> {
    if (contextId === taskId) return;
    await this.db.prisma.a2aTaskContext.create({ data: { taskId, contextId } });
  }

  /** The task in A2A form, or undefined when the agency has no task by that id. */
  async a2aTask(taskId: string): Promise<A2ATask | undefined> {
    const task = await this.agencyTask(taskId);
    return task ? toA2ATask(task, await this.contextOf(task.id)) : undefined;
  }

  async load(taskId: string, _context: ServerCallContext): Promise<A2ATask | undefined> {
    return this.a2aTask(taskId);
  }

  /**
   * The request handler saves its merged view of a task after each event. That view is made from the
   * agency's rows (load), and everything in it that changes is changed by the tasks service through the
   * state machine, never by overwriting the row with a view. So a save only checks that the task is an
   * agency task: a task the agency does not have cannot be brought into being through the store.
   */
  async save(task: A2ATask, _context: ServerCallContext): Promise<void> {
    const exists = UUID.test(task.id) && (await this.db.prisma.task.count({ where: { id: task.id } })) > 0;
    if (!exists) {
      throw new TaskNotFoundError(`Task ${task.id} is not an agency task; tasks are created by message/send.`);
    }
  }

  /** Newest first: every agency task by its list's cursor, or a context's tasks by an offset. */
  async list(params: ListTasksRequest, _context: ServerCallContext): Promise<ListTasksResponse> {
    const pageSize = params.pageSize ?? 50;
    if (params.statusTimestampAfter) {
      throw new UnsupportedOperationError(
        "ListTasks does not filter by statusTimestampAfter here: leave it out (tasks come newest first), or use the agency's tasks.list with a created range.",
      );
    }
    const states = params.status === A2AState.TASK_STATE_UNSPECIFIED ? undefined : agencyStatesOf(params.status);
    if (states?.length === 0) throw new RequestMalformedError(`No agency task is ever in status ${params.status}.`);
    const page = params.contextId
      ? await this.contextPage(params.contextId, states, pageSize, params.pageToken)
      : await this.agencyPage(states, pageSize, params.pageToken);
    const tasks: A2ATask[] = [];
    for (const id of page.ids) {
      const task = await this.a2aTask(id);
      if (task) tasks.push(params.includeArtifacts ? task : { ...task, artifacts: [] });
    }
    return { tasks, nextPageToken: page.next, pageSize, totalSize: page.total };
  }

  private async agencyPage(states: TaskState[] | undefined, pageSize: number, token: string) {
    const filter = taskFilterSchema.parse({ sort: "created_desc", ...(states ? { states } : {}) });
    try {
      const page = await this.tasks.list(filter, pageSize, token || null);
      return {
        ids: page.items.map((t) => t.id),
        next: page.nextCursor ?? "",
        total: await this.tasks.count(filter),
      };
    } catch (err) {
      if (err instanceof DomainError) throw new RequestMalformedError(`pageToken: ${err.message}`);
      throw err;
    }
  }

  /** The tasks created in the context, and the task whose own context it is (its id, without a row of its own). */
  private async contextPage(contextId: string, states: TaskState[] | undefined, pageSize: number, token: string) {
    if (token && !/^\d{1,9}$/.test(token)) {
      throw new RequestMalformedError(
        "pageToken: not one this server gave; list the context again from its first page.",
      );
    }
    const offset = token ? Number(token) : 0;
    const rows = await this.db.prisma.a2aTaskContext.findMany({ where: { contextId }, select: { taskId: true } });
    const ids = rows.map((r) => r.taskId);
    if (UUID.test(contextId) && !(await this.db.prisma.a2aTaskContext.findUnique({ where: { taskId: contextId } }))) {
      ids.push(contextId);
    }
    const where = { id: { in: ids }, ...(states ? { state: { in: states } } : {}) };
    const [found, total] = await Promise.all([
      this.db.prisma.task.findMany({
        where,
        orderBy: { seq: "desc" },
        skip: offset,
        take: pageSize,
        select: { id: true },
      }),
      this.db.prisma.task.count({ where }),
    ]);
    const next = offset + found.length < total ? String(offset + found.length) : "";
    return { ids: found.map((t) => t.id), next, total };
  }
}

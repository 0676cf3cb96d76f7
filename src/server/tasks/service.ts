import { randomUUID } from "node:crypto";
import type { Actor } from "../../shared/roles.js";
import type { ParsedTaskFilter, TaskSort } from "../../shared/task-list.js";
import { priorityRank, type TaskSpec } from "../../shared/task-spec.js";
import {
  assertTransition,
  IllegalTransitionError,
  type TaskState,
  type TransitionActor,
} from "../../shared/task-state.js";
import type { Database } from "../db/database.js";
import type { Prisma, Task } from "../db/generated/client.js";
import { DomainError, notFound } from "../errors.js";
import { appendTaskEvents, type NewTaskEvent, type Tx } from "../events/append.js";
import { type TaskEventHub, toEventDto } from "../events/task-event-hub.js";
import { decodeCursor, encodeCursor } from "./cursor.js";

const summarySelect = {
  id: true,
  seq: true,
  title: true,
  priority: true,
  priorityRank: true,
  riskTier: true,
  mode: true,
  capability: true,
  state: true,
  attempt: true,
  createdBy: true,
  createdAt: true,
  updatedAt: true,
} satisfies Prisma.TaskSelect;

type SummaryRow = Prisma.TaskGetPayload<{ select: typeof summarySelect }>;

function toSummary(t: SummaryRow) {
  return {
    id: t.id,
    title: t.title,
    priority: t.priority,
    riskTier: t.riskTier,
    mode: t.mode,
    capability: t.capability,
    state: t.state as TaskState,
    attempt: t.attempt,
    createdBy: t.createdBy,
    createdAt: t.createdAt,
    updatedAt: t.updatedAt,
  };
}
export type TaskSummary = ReturnType<typeof toSummary>;

function toDetail(t: Task) {
  return {
    ...toSummary(t),
    description: t.description,
    spec: t.spec as unknown as TaskSpec,
    stateReason: t.stateReason,
  };
}

const ORDER: Record<TaskSort, Prisma.TaskOrderByWithRelationInput[]> = {
  created_desc: [{ seq: "desc" }],
  created_asc: [{ seq: "asc" }],
  priority_desc: [{ priorityRank: "desc" }, { seq: "desc" }],
  priority_asc: [{ priorityRank: "asc" }, { seq: "asc" }],
};

/** Rows strictly after the cursor in the sort's order. */
function afterCursor(sort: TaskSort, cursor: string): Prisma.TaskWhereInput {
  const byRank = sort.startsWith("priority");
  const key = decodeCursor(cursor, byRank);
  const desc = sort.endsWith("desc");
  const seq = desc ? { lt: key.seq } : { gt: key.seq };
  if (!byRank) return { seq };
  const rank = key.rank as number;
  return { OR: [{ priorityRank: desc ? { lt: rank } : { gt: rank } }, { priorityRank: rank, seq }] };
}

function filterWhere(f: ParsedTaskFilter): Prisma.TaskWhereInput {
  const and: Prisma.TaskWhereInput[] = [];
  if (f.states?.length) and.push({ state: { in: f.states } });
  if (f.priorities?.length) and.push({ priority: { in: f.priorities } });
  if (f.riskTiers?.length) and.push({ riskTier: { in: f.riskTiers } });
  if (f.modes?.length) and.push({ mode: { in: f.modes } });
  if (f.createdFrom || f.createdTo) and.push({ createdAt: { gte: f.createdFrom, lte: f.createdTo } });
  if (f.text) {
    // Prisma passes `contains` to ILIKE as is: escape its wildcards so they match literally.
    const text = f.text.replace(/[\\%_]/g, "\\$&");
    and.push({
      OR: [
        { title: { contains: text, mode: "insensitive" } },
        { description: { contains: text, mode: "insensitive" } },
      ],
    });
  }
  return { AND: and };
}

export interface TransitionRequest {
  to: TaskState;
  by: TransitionActor;
  actorId: string;
  reason?: string;
  data?: Record<string, Prisma.InputJsonValue>;
}

export class TaskService {
  constructor(
    private readonly db: Database,
    private readonly hub: TaskEventHub,
  ) {}

  async create(actor: Actor, spec: TaskSpec) {
    const id = randomUUID();
    const task = await this.db.prisma.$transaction(async (tx) => {
      const created = await tx.task.create({
        data: {
          id,
          title: spec.title,
          description: spec.description,
          priority: spec.priority,
          priorityRank: priorityRank(spec.priority),
          riskTier: spec.riskTier,
          mode: spec.mode,
          capability: spec.capability,
          spec: spec as unknown as Prisma.InputJsonValue,
          createdBy: actor.id,
        },
      });
      await appendTaskEvents(tx, [
        { taskId: id, type: "created", toState: "queued", actor: actor.id, data: { title: spec.title } },
      ]);
      return created;
    });
    this.hub.notify();
    return toDetail(task);
  }

  async list(filter: ParsedTaskFilter, limit: number, cursor?: string | null) {
    const where: Prisma.TaskWhereInput = {
      AND: [filterWhere(filter), ...(cursor ? [afterCursor(filter.sort, cursor)] : [])],
    };
    const rows = await this.db.prisma.task.findMany({
      where,
      orderBy: ORDER[filter.sort],
      take: limit + 1,
      select: summarySelect,
    });
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    const nextCursor =
      rows.length > limit && last
        ? encodeCursor({ seq: last.seq, rank: filter.sort.startsWith("priority") ? last.priorityRank : undefined })
        : null;
    return { items: page.map(toSummary), nextCursor };
  }

  async get(id: string) {
    const task = await this.db.prisma.task.findUnique({
      where: { id },
      include: { events: { orderBy: { seq: "asc" } } },
    });
    if (!task) throw notFound("Task", id);
    return { ...toDetail(task), events: task.events.map(toEventDto) };
  }

  /**
   * Moves a task along the state machine, checked against the state it is in when the update
   * commits, and appends the events in the same transaction.
   */
  async transition(id: string, steps: TransitionRequest[]) {
    const task = await this.db.prisma.$transaction(async (tx) => {
      const current = await tx.task.findUnique({ where: { id }, select: { state: true } });
      if (!current) throw notFound("Task", id);
      let state = current.state as TaskState;
      const events: NewTaskEvent[] = [];
      for (const step of steps) {
        try {
          assertTransition(state, step.to, step.by);
        } catch (err) {
          if (err instanceof IllegalTransitionError) throw new DomainError("BAD_REQUEST", err.message);
          throw err;
        }
        events.push({
          taskId: id,
          type: "state_changed",
          fromState: state,
          toState: step.to,
          actor: step.actorId,
          data: { ...step.data, ...(step.reason ? { reason: step.reason } : {}) },
        });
        state = step.to;
      }
      const last = steps.at(-1);
      const updated = await updateState(tx, id, current.state as TaskState, state, last?.reason);
      await appendTaskEvents(tx, events);
      return updated;
    });
    this.hub.notify();
    return toDetail(task);
  }

  /** Cancels a task. Nothing runs a queued task, so its cancellation is confirmed at once. */
  async cancel(actor: Actor, id: string, reason: string) {
    const by = actorTransitionRole(actor);
    const task = await this.db.prisma.task.findUnique({ where: { id }, select: { state: true } });
    if (!task) throw notFound("Task", id);
    const steps: TransitionRequest[] = [{ to: "canceling", by, actorId: actor.id, reason }];
    if (task.state === "queued") {
      steps.push({ to: "canceled", by: "system", actorId: "system", reason, data: { confirmed: true } });
    }
    return this.transition(id, steps);
  }

  /** Puts a finished task back in the queue for a new attempt. */
  retry(actor: Actor, id: string) {
    return this.transition(id, [{ to: "queued", by: actorTransitionRole(actor), actorId: actor.id }]);
  }
}

async function updateState(tx: Tx, id: string, from: TaskState, to: TaskState, reason?: string) {
  const { count } = await tx.task.updateMany({
    where: { id, state: from },
    data: { state: to, updatedAt: new Date(), stateReason: reason ?? null },
  });
  if (count === 0) {
    throw new DomainError("CONFLICT", `Task ${id} changed state while this request ran; reload it and try again.`);
  }
  return tx.task.findUniqueOrThrow({ where: { id } });
}

function actorTransitionRole(actor: Actor): TransitionActor {
  if (actor.kind === "system" || actor.kind === "worker") return "system";
  return actor.role === "admin" ? "admin" : "operator";
}

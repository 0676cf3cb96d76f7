import { randomUUID } from "node:crypto";
import type { Actor } from "../../shared/roles.js";
import type { TaskSpecEdits } from "../../shared/task-inputs.js";
import type { ParsedTaskFilter, TaskSort } from "../../shared/task-list.js";
import { priorityRank, type TaskSpec, taskSpecSchema } from "../../shared/task-spec.js";
import { type TaskState, type TransitionActor, UNFINISHED_STATES } from "../../shared/task-state.js";
import { type Judgement, VERDICT_STATE, VERDICT_STATES, type Verdict } from "../../shared/verdict.js";
import type { CheckResult, Critique } from "../../shared/worker-protocol.js";
import type { ClientInfo, NewAuditEntry } from "../audit/service.js";
import { critiqueFrom } from "../council/council.js";
import type { Database } from "../db/database.js";
import { Prisma, type Task } from "../db/generated/client.js";
import type { UnitOfWork, UnitOfWorkRunner } from "../db/unit-of-work.js";
import { DomainError, notFound } from "../errors.js";
import { type EventPage, type EventPageQuery, readEventPage } from "../events/read.js";
import type { InputRequest } from "../execution/a2a-attempts.js";
import { validationMessage } from "../lib/validation-message.js";
import { attemptUsage, taskUsage } from "../metrics/usage.js";
import { judgementRowDigest } from "../provenance/rows.js";
import type { NewProvenanceRecord } from "../provenance/service.js";
import { type CreateSpans, type TraceCarrier, traceNewTasks } from "../telemetry/tracing.js";
import { attemptOrigins } from "./attempt-origins.js";
import { decodeCursor, encodeCursor } from "./cursor.js";
import {
  taskCancel,
  taskCancelRequested,
  taskCreated,
  taskOverride,
  taskRetry,
  type VerdictOverride,
} from "./decisions.js";
import { idPrefixWhere, SearchSample, textWhere } from "./search.js";
import { applyStateChanges, IllegalTransitionError, type StateChange, type TaskColumns } from "./state-changes.js";

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
  // The latest attempt only: the list's worker and duration columns.
  attempts: {
    orderBy: { number: "desc" },
    take: 1,
    select: { startedAt: true, finishedAt: true, worker: { select: { id: true, name: true } } },
  },
} satisfies Prisma.TaskSelect;

type SummaryRow = Prisma.TaskGetPayload<{ select: typeof summarySelect }>;

function toSummary(t: Omit<SummaryRow, "attempts">) {
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

/** A list row: the summary and the latest attempt's worker and run time (finishedAt null while it runs). */
function toListItem(t: SummaryRow) {
  const latest = t.attempts[0];
  return {
    ...toSummary(t),
    /** null before the first dispatch. */
    lastRun: latest
      ? {
          worker: latest.worker ? { id: latest.worker.id, name: latest.worker.name } : null,
          startedAt: latest.startedAt,
          finishedAt: latest.finishedAt,
        }
      : null,
  };
}

function toDetail(t: Task) {
  return {
    ...toSummary(t),
    description: t.description,
    spec: t.spec as unknown as TaskSpec,
    stateReason: t.stateReason,
    queuedAt: t.queuedAt,
    /** Why a queued task is not being dispatched; null when it is simply waiting its turn. */
    waitingReason: t.waitingReason,
    redispatches: t.redispatches,
    failures: t.failures,
    cancelRequestedBy: t.cancelRequestedBy,
    cancelRequestedAt: t.cancelRequestedAt,
    cancelReason: t.cancelReason,
    cancelConfirmed: t.cancelConfirmed,
  };
}

/** Another task as a task names it: a rerun's original, an original's reruns. */
const linkSelect = { id: true, title: true, state: true, createdAt: true } satisfies Prisma.TaskSelect;
const toLink = (t: Prisma.TaskGetPayload<{ select: typeof linkSelect }>) => ({
  id: t.id,
  title: t.title,
  state: t.state as TaskState,
  createdAt: t.createdAt,
});
export type TaskLink = ReturnType<typeof toLink>;

const attemptInclude = {
  worker: { select: { id: true, name: true } },
  artifacts: { orderBy: { path: "asc" } },
} satisfies Prisma.AttemptInclude;
type AttemptRow = Prisma.AttemptGetPayload<{ include: typeof attemptInclude }>;

function toAttempt(a: AttemptRow) {
  return {
    id: a.id,
    number: a.number,
    state: a.state,
    worker: a.worker ? { id: a.worker.id, name: a.worker.name } : null,
    queuedAt: a.queuedAt,
    startedAt: a.startedAt,
    finishedAt: a.finishedAt,
    tries: a.tries,
    error: a.error,
    summary: a.summary,
    result: a.result as { logs?: string[]; checks?: CheckResult[]; usage?: Record<string, number> } | null,
    critique: a.critique as Critique | null,
    /** What the worker reported it used (tokens, cost, model); null when it reported nothing. */
    usage: attemptUsage(a),
    verdict: a.verdict as Judgement["verdict"] | null,
    /** `override` is there when an admin replaced this verdict (the latest override; the audit trail has them all). */
    judgement: a.judgement as (Judgement & { override?: VerdictOverride }) | null,
    /** A2A workers: the agent's own task id for this attempt. */
    remoteTaskId: a.remoteTaskId,
    /** A2A workers: the agent's open question, while the running attempt waits for an operator's answer. */
    inputRequest: a.state === "running" ? (a.inputRequest as InputRequest | null) : null,
    /** Whether that question has its answer (on its way to the agent). */
    inputAnswered: a.state === "running" && a.inputRequest !== null && a.inputAnswer !== null,
    artifacts: a.artifacts.map((x) => ({
      id: x.id,
      path: x.path,
      operation: x.operation as "create" | "modify" | "delete",
      content: x.content,
      diff: x.diff,
      linesAdded: x.linesAdded,
      linesRemoved: x.linesRemoved,
    })),
  };
}
export type AttemptDetail = ReturnType<typeof toAttempt>;

/** What a bulk action did to one task. */
export interface BulkOutcome {
  id: string;
  outcome: "done" | "skipped";
  state?: TaskState;
  reason?: string;
}

/** The execution engine as tasks need it: stop what runs. */
export interface ExecutionHooks {
  cancelRunning(taskId: string, reason: string): Promise<{ confirmed: boolean; detail: string }>;
}

/** At most this many tasks per bulk action by filter; the count tells the console how many match. */
export const BULK_LIMIT = 1_000;

/** tasks.count counts no further: the console shows "10,000+ tasks" past it. */
export const TASK_COUNT_CAP = 10_000;

const ORDER: Record<TaskSort, Prisma.TaskOrderByWithRelationInput[]> = {
  created_desc: [{ seq: "desc" }],
  created_asc: [{ seq: "asc" }],
  priority_desc: [{ priorityRank: "desc" }, { seq: "desc" }],
  priority_asc: [{ priorityRank: "asc" }, { seq: "asc" }],
  updated_desc: [{ updatedAt: "desc" }, { seq: "desc" }],
  updated_asc: [{ updatedAt: "asc" }, { seq: "asc" }],
};

/** The cursor's first part for a sort: the priority rank, the update time in milliseconds, or none. */
function cursorRank(sort: TaskSort, row: { priorityRank: number; updatedAt: Date }): number | undefined {
  if (sort.startsWith("priority")) return row.priorityRank;
  if (sort.startsWith("updated")) return row.updatedAt.getTime();
  return undefined;
}

/** Rows strictly after the cursor in the sort's order. */
function afterCursor(sort: TaskSort, cursor: string): Prisma.TaskWhereInput {
  const byRank = sort.startsWith("priority");
  const byUpdated = sort.startsWith("updated");
  const key = decodeCursor(cursor, byRank || byUpdated);
  const desc = sort.endsWith("desc");
  const seq = desc ? { lt: key.seq } : { gt: key.seq };
  if (byUpdated) {
    // The cursor's first part is the row's updated_at in milliseconds, the column's precision.
    const at = new Date(key.rank as number);
    return { OR: [{ updatedAt: desc ? { lt: at } : { gt: at } }, { updatedAt: at, seq }] };
  }
  if (!byRank) return { seq };
  const rank = key.rank as number;
  return { OR: [{ priorityRank: desc ? { lt: rank } : { gt: rank } }, { priorityRank: rank, seq }] };
}

/** `searchSample`: see SearchSample; it only orders the text conditions, the rows are the same without it. */
function filterWhere(f: ParsedTaskFilter, searchSample?: readonly string[]): Prisma.TaskWhereInput {
  const and: Prisma.TaskWhereInput[] = [];
  if (f.states?.length) and.push({ state: { in: f.states } });
  if (f.priorities?.length) and.push({ priority: { in: f.priorities } });
  if (f.riskTiers?.length) and.push({ riskTier: { in: f.riskTiers } });
  if (f.modes?.length) and.push({ mode: { in: f.modes } });
  if (f.createdFrom || f.createdTo) and.push({ createdAt: { gte: f.createdFrom, lte: f.createdTo } });
  if (f.text) {
    const byId = idPrefixWhere(f.text);
    and.push(byId ? { OR: [byId, textWhere(f.text, searchSample)] } : textWhere(f.text, searchSample));
  }
  return { AND: and };
}

export interface TransitionRequest {
  to: TaskState;
  by: TransitionActor;
  actorId: string;
  reason?: string;
  data?: Record<string, unknown>;
  /** The audit action, e.g. `task.cancel`; `task.transition` when absent. */
  action?: string;
}

/** A transition's steps with what they set and put on the provenance log. */
export interface TransitionPlan {
  steps: TransitionRequest[];
  set?: TaskColumns;
  provenance?: NewProvenanceRecord[];
}

/** Who asked for a transition (for the audit trail) and what decisions it puts on the provenance chain. */
export interface TransitionTrail {
  actor?: Pick<Actor, "kind" | "id">;
  client?: ClientInfo;
  provenance?: () => NewProvenanceRecord[];
  /** More writes that belong to the same change, run in its unit of work before the state update. */
  within?: (unit: UnitOfWork) => Promise<void>;
}

export class TaskService {
  private readonly searchSample: SearchSample;

  constructor(
    private readonly db: Database,
    private readonly execution?: ExecutionHooks,
    private readonly unitsRunner?: UnitOfWorkRunner,
    /** MAX_AUTO_REDISPATCH: the task's automatic budget, shown with a retry (which does not refill it). */
    private readonly autoRedispatchMax: number = 2,
  ) {
    this.searchSample = new SearchSample(db);
  }

  /** Only a filter with several search words needs the sample (to put the rarest word first). */
  private async sampleFor(filter: ParsedTaskFilter): Promise<string[] | undefined> {
    return filter.text && /\S\s+\S/.test(filter.text) ? this.searchSample.get() : undefined;
  }

  /** Reading needs no units of work; every change does, so a service built without them refuses to change anything. */
  private get units(): UnitOfWorkRunner {
    if (!this.unitsRunner) {
      throw new Error(
        "This TaskService was built without units of work (audit trail, provenance), so it cannot change tasks; use createServices.",
      );
    }
    return this.unitsRunner;
  }

  /** `trace`: the caller's W3C trace context (tasks.create's `traceparent` header): the task's trace joins it. */
  async create(actor: Actor, spec: TaskSpec, client?: ClientInfo, trace?: TraceCarrier) {
    const [id] = await this.createMany(actor, [spec], client, trace);
    return toDetail(await this.db.prisma.task.findUniqueOrThrow({ where: { id: id as string } }));
  }

  /**
   * Creates many tasks in one unit of work whatever the count: the tasks in one statement, then their
   * audit entries, provenance records and creation events in the unit's ordered one.
   */
  async createMany(actor: Actor, specs: TaskSpec[], client?: ClientInfo, trace?: TraceCarrier): Promise<string[]> {
    if (specs.length === 0) return [];
    const rows = newTaskRows(specs);
    const spans = traceNewTasks(rows, trace);
    try {
      await this.units.run((unit) => insertTasks(unit, actor, rows, client));
    } catch (err) {
      spans.end(err);
      throw err;
    }
    spans.end();
    return rows.map((r) => r.id);
  }

  /**
   * A new task from a finished task's spec with `edits` applied (each given field replaces the original's),
   * checked as tasks.create checks a spec. It names the original (`rerunOf`), which lists it among its
   * reruns; it is audited (`task.rerun`) and put on the provenance chain like a created task.
   */
  async rerun(actor: Actor, id: string, edits: TaskSpecEdits, client?: ClientInfo, trace?: TraceCarrier) {
    let newId = "";
    const traced: { spans?: CreateSpans } = {};
    const stored = this.units.run(async (unit) => {
      // FOR SHARE: the original cannot be requeued (retry) between this read and the commit.
      const [original] = await unit.tx.$queryRawUnsafe<{ state: TaskState; spec: Record<string, unknown> }[]>(
        "SELECT state, spec FROM tasks WHERE id = $1::uuid FOR SHARE",
        id,
      );
      if (!original) throw notFound("Task", id);
      if (UNFINISHED_STATES.includes(original.state)) {
        throw new DomainError(
          "BAD_REQUEST",
          `Only a finished task can be rerun; task ${id} is ${original.state}. Wait for it to finish, or cancel it first.`,
        );
      }
      const given = Object.fromEntries(Object.entries(edits).filter(([, v]) => v !== undefined));
      const merged = taskSpecSchema.safeParse({ ...original.spec, ...given });
      if (!merged.success) {
        throw new DomainError(
          "BAD_REQUEST",
          `The original's spec with these edits is not a valid task spec: ${validationMessage(merged.error.issues)}. Give edits that correct it.`,
        );
      }
      const rows = newTaskRows([merged.data], id);
      newId = (rows[0] as { id: string }).id;
      // A unit run again (another process appended to the provenance log meanwhile) makes a new row.
      traced.spans?.end(new Error("Not stored: the unit of work ran again with a new task id."));
      traced.spans = traceNewTasks(rows, trace);
      await insertTasks(unit, actor, rows, client, Object.keys(given));
    });
    await stored.then(
      () => traced.spans?.end(),
      (err: unknown) => {
        traced.spans?.end(err);
        throw err;
      },
    );
    return this.get(newId);
  }

  async count(filter: ParsedTaskFilter): Promise<number> {
    return this.db.prisma.task.count({ where: filterWhere(filter, await this.sampleFor(filter)) });
  }

  /**
   * How many tasks match, counting no further than `cap` + 1 rows (a subquery with a LIMIT), so a
   * broad filter over a large table costs at most that many index entries. A result above `cap`
   * means "more than cap".
   */
  async countUpTo(filter: ParsedTaskFilter, cap: number): Promise<number> {
    return this.db.prisma.task.count({ where: filterWhere(filter, await this.sampleFor(filter)), take: cap + 1 });
  }

  async list(filter: ParsedTaskFilter, limit: number, cursor?: string | null) {
    const where: Prisma.TaskWhereInput = {
      AND: [filterWhere(filter, await this.sampleFor(filter)), ...(cursor ? [afterCursor(filter.sort, cursor)] : [])],
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
      rows.length > limit && last ? encodeCursor({ seq: last.seq, rank: cursorRank(filter.sort, last) }) : null;
    return { items: page.map(toListItem), nextCursor };
  }

  /**
   * The task with every attempt (worker, timings, tries, errors, artifacts, judgement) and the latest verdict.
   * Its events are not here: they can be many (every line of output), so they are read by page (`events`).
   */
  async get(id: string) {
    const task = await this.db.prisma.task.findUnique({
      where: { id },
      include: {
        attempts: { orderBy: { number: "asc" }, include: attemptInclude },
        original: { select: linkSelect },
        reruns: { select: linkSelect, orderBy: { seq: "asc" } },
      },
    });
    if (!task) throw notFound("Task", id);
    const origins = await attemptOrigins(this.db, id, task.attempts);
    const attempts = task.attempts.map((a) => ({ ...toAttempt(a), origin: origins.get(a.number) ?? null }));
    const judged = attempts.filter((a) => a.judgement).at(-1) ?? null;
    return {
      ...toDetail(task),
      attempts,
      verdict: judged
        ? { attempt: judged.number, ...(judged.judgement as Judgement & { override?: VerdictOverride }) }
        : null,
      artifacts: judged?.artifacts ?? [],
      /** The sum of the attempts' reported usage. */
      usage: taskUsage(attempts),
      /** Automatic re-dispatches after "changes requested" used so far, of the task's budget (never refilled). */
      autoRedispatch: { used: task.redispatches, max: this.autoRedispatchMax },
      /** The task this one reruns (tasks.rerun), and the tasks that rerun this one, oldest first. */
      rerunOf: task.original ? toLink(task.original) : null,
      reruns: task.reruns.map(toLink),
    };
  }

  /**
   * One page of a task's events, oldest first: the newest `limit` (neither `after` nor `before`), the next ones
   * after `after`, or the ones before `before`; only `kinds` when given. NOT_FOUND for a task that does not exist.
   */
  async events(q: EventPageQuery): Promise<EventPage> {
    const page = await readEventPage(this.db, q);
    if (page.items.length === 0 && !(await this.db.prisma.task.count({ where: { id: q.taskId } }))) {
      throw notFound("Task", q.taskId);
    }
    return page;
  }

  /**
   * Moves a task along the state machine (tasks/state-changes.ts), fenced on the state it was read in,
   * in one unit of work with its audit entries, provenance records and events.
   */
  async transition(
    id: string,
    /** The steps, or a plan made from the state the task is in (read under the row's lock). */
    plan: TransitionRequest[] | ((from: TaskState) => TransitionPlan),
    set: TaskColumns = {},
    who: TransitionTrail = {},
  ) {
    await this.units.run(async (unit) => {
      // Locked: a dispatcher's claim skips the row until this change commits.
      const [current] = await unit.tx.$queryRawUnsafe<{ state: TaskState }[]>(
        "SELECT state FROM tasks WHERE id = $1::uuid FOR UPDATE",
        id,
      );
      if (!current) throw notFound("Task", id);
      const { steps, ...planned } =
        typeof plan === "function" ? plan(current.state) : { steps: plan, set, provenance: who.provenance?.() };
      await who.within?.(unit);
      const change: StateChange = {
        taskId: id,
        from: current.state,
        steps: steps.map((step) => {
          const bySystem = step.by === "system";
          return {
            to: step.to,
            by: step.by,
            actor: bySystem ? { kind: "system", id: step.actorId } : (who.actor ?? { kind: "user", id: step.actorId }),
            eventActor: step.actorId,
            action: step.action ?? "task.transition",
            reason: step.reason ?? null,
            data: step.data ?? {},
            after: step.data ?? {},
            ...(bySystem || !who.client ? {} : { client: who.client }),
          };
        }),
        set: planned.set ?? {},
        provenance: planned.provenance ?? [],
      };
      let applied: Set<string>;
      try {
        applied = await applyStateChanges(unit, [change]);
      } catch (err) {
        if (err instanceof IllegalTransitionError) throw new DomainError("BAD_REQUEST", err.message);
        throw err;
      }
      if (!applied.size) {
        throw new DomainError("CONFLICT", `Task ${id} changed state while this request ran; reload it and try again.`);
      }
    });
    return toDetail(await this.db.prisma.task.findUniqueOrThrow({ where: { id } }));
  }

  /**
   * Cancels a task: `canceling` at once, then `canceled`. A queued task has nothing
   * running, so that is confirmed at once; a running one has its request aborted and its worker told
   * through `/cancel`, and is confirmed only if the worker answers in time.
   */
  async cancel(actor: Actor, id: string, reason: string, client?: ClientInfo) {
    const by = actorTransitionRole(actor);
    const requested = {
      cancel_requested_by: actor.id,
      cancel_requested_at: new Date().toISOString(),
      cancel_reason: reason,
    };
    const canceling: TransitionRequest = { to: "canceling", by, actorId: actor.id, reason, action: "task.cancel" };
    let wasRunning = false;
    // Decided on the state read under the row's lock: a task claimed meanwhile is running, not queued.
    await this.transition(
      id,
      (from) => {
        wasRunning = from === "running";
        if (wasRunning) {
          // The request goes on the log now, binding its audit entry and event; the cancel's own record is
          // written when it ends, confirmed or not (execution's cancelRunning).
          return {
            steps: [canceling],
            set: { ...requested, cancel_confirmed: null },
            provenance: [taskCancelRequested(id, actor.id, reason)],
          };
        }
        const detail = "nothing was running";
        return {
          steps: [
            canceling,
            {
              to: "canceled",
              by: "system",
              actorId: "system",
              reason,
              data: { confirmed: true, detail },
              action: "task.cancel_done",
            },
          ],
          set: { ...requested, cancel_confirmed: true },
          provenance: [taskCancel(id, { by: actor.id, reason, confirmed: true, detail })],
        };
      },
      {},
      { actor, ...(client ? { client } : {}) },
    );
    if (wasRunning && this.execution) await this.execution.cancelRunning(id, reason);
    return toDetail(await this.db.prisma.task.findUniqueOrThrow({ where: { id } }));
  }

  /**
   * Puts a finished task back in the queue for one new attempt, carrying the critique of the last
   * verdict that asked for changes (or rejected) when there is one. The retry is recorded as the
   * operator's (who, when, which attempt) and does not refill the automatic re-dispatch budget: what
   * is left of it still applies, so a task that spent it gets exactly the attempt the operator asked for.
   */
  async retry(actor: Actor, id: string, client?: ClientInfo) {
    // The attempt count cannot move while the task is in a state a retry starts from (nothing runs it);
    // the transition below checks that state under the row's lock.
    const counts = await this.db.prisma.task.findUnique({
      where: { id },
      select: { attempt: true, redispatches: true },
    });
    if (!counts) throw notFound("Task", id);
    const retryData = {
      retry: { attempt: counts.attempt + 1, by: actor.id },
      autoRedispatch: {
        used: counts.redispatches,
        max: this.autoRedispatchMax,
        left: Math.max(0, this.autoRedispatchMax - counts.redispatches),
      },
    };
    const last = await this.db.prisma.attempt.findFirst({
      where: { taskId: id, judgement: { not: Prisma.AnyNull } },
      orderBy: { number: "desc" },
      select: { number: true, judgement: true, verdict: true },
    });
    const judgement = last?.judgement as Judgement | null | undefined;
    const critique = last && judgement && judgement.verdict !== "accept" ? critiqueFrom(last.number, judgement) : null;
    return this.transition(
      id,
      [
        {
          to: "queued",
          by: actorTransitionRole(actor),
          actorId: actor.id,
          data: { ...retryData, ...(critique ? { critiqueFrom: critique.fromAttempt } : {}) },
          action: "task.retry",
        },
      ],
      {
        requeued: true,
        failures: 0,
        waiting_reason: null,
        next_critique: critique,
        cancel_requested_by: null,
        cancel_requested_at: null,
        cancel_reason: null,
        cancel_confirmed: null,
      },
      {
        actor,
        ...(client ? { client } : {}),
        provenance: () => [taskRetry(id, actor, critique?.fromAttempt ?? null)],
      },
    );
  }

  /**
   * Replaces a task's verdict with another, by an admin with a written justification. The override is
   * kept on the latest judgement, in the audit trail and on the provenance chain, in one transaction.
   */
  async override(actor: Actor, id: string, verdict: Verdict, justification: string, client?: ClientInfo) {
    const to = VERDICT_STATE[verdict];
    const task = await this.db.prisma.task.findUnique({ where: { id }, select: { state: true } });
    if (!task) throw notFound("Task", id);
    const from = task.state as TaskState;
    if (!VERDICT_STATES.includes(from)) {
      throw new DomainError(
        "BAD_REQUEST",
        `Only a judged task (${VERDICT_STATES.join(", ")}) can have its verdict overridden; this task is ${from}.`,
      );
    }
    if (from === to) {
      throw new DomainError("BAD_REQUEST", `The task is already ${from}; choose a different verdict to override it.`);
    }
    const record: VerdictOverride = { by: actor.id, at: new Date().toISOString(), from, to, justification };
    let rewritten: { attemptId: string; digest: string } | null = null;
    return this.transition(
      id,
      [
        {
          to,
          by: actorTransitionRole(actor),
          actorId: actor.id,
          reason: justification,
          data: { verdict, overridden: from },
          action: "task.override",
        },
      ],
      {},
      {
        actor,
        ...(client ? { client } : {}),
        // The record binds the rewritten judgement: the verdict's record bound the one it replaces.
        provenance: () => [taskOverride(id, record, rewritten)],
        within: async (unit) => {
          const [judged] = await unit.tx.$queryRawUnsafe<
            { id: string; judgement: Record<string, unknown>; verdict: string | null }[]
          >(
            `SELECT id, judgement, verdict FROM attempts
              WHERE task_id = $1::uuid AND judgement IS NOT NULL AND judgement <> 'null'::jsonb
              ORDER BY number DESC LIMIT 1 FOR UPDATE`,
            id,
          );
          if (!judged) return;
          const judgement = { ...judged.judgement, override: { ...record } };
          await unit.tx.$executeRawUnsafe(
            "UPDATE attempts SET judgement = $2::jsonb WHERE id = $1::uuid",
            judged.id,
            JSON.stringify(judgement),
          );
          rewritten = { attemptId: judged.id, digest: judgementRowDigest({ verdict: judged.verdict, judgement }) };
        },
      },
    );
  }

  /** The ids a bulk action applies to: the given ones, or those matching the filter (up to BULK_LIMIT). */
  async resolveSelection(sel: { ids?: string[]; filter?: ParsedTaskFilter }): Promise<string[]> {
    if (sel.ids) return [...new Set(sel.ids)];
    if (!sel.filter) throw new DomainError("BAD_REQUEST", "Give either ids or a filter.");
    const rows = await this.db.prisma.task.findMany({
      where: filterWhere(sel.filter, await this.sampleFor(sel.filter)),
      orderBy: ORDER[sel.filter.sort],
      take: BULK_LIMIT,
      select: { id: true },
    });
    return rows.map((r) => r.id);
  }

  /** Each task is canceled in its own transaction, so each gets its own audit entry and provenance record. */
  async cancelMany(
    actor: Actor,
    sel: { ids?: string[]; filter?: ParsedTaskFilter },
    reason: string,
    client?: ClientInfo,
  ) {
    const ids = await this.resolveSelection(sel);
    return this.bulk(ids, (id) => this.cancel(actor, id, reason, client));
  }

  async retryMany(actor: Actor, sel: { ids?: string[]; filter?: ParsedTaskFilter }, client?: ClientInfo) {
    const ids = await this.resolveSelection(sel);
    return this.bulk(ids, (id) => this.retry(actor, id, client));
  }

  /** Runs an action on each task, a few at a time, and reports what happened to each. */
  private async bulk(ids: string[], action: (id: string) => Promise<{ state: TaskState }>) {
    const results: BulkOutcome[] = new Array(ids.length);
    let next = 0;
    const lane = async () => {
      for (let i = next++; i < ids.length; i = next++) {
        const id = ids[i] as string;
        try {
          const t = await action(id);
          results[i] = { id, outcome: "done", state: t.state };
        } catch (err) {
          if (!(err instanceof DomainError)) throw err;
          results[i] = { id, outcome: "skipped", reason: err.message };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(8, ids.length) }, lane));
    return {
      done: results.filter((r) => r.outcome === "done").length,
      skipped: results.filter((r) => r.outcome === "skipped").length,
      results,
    };
  }
}

/** A new task's row as insertTasks writes it; `rerun_of` names the task it reruns. */
interface NewTaskRow {
  id: string;
  title: string;
  description: string;
  priority: string;
  priority_rank: number;
  risk_tier: number;
  mode: string;
  capability: string;
  spec: TaskSpec;
  rerun_of: string | null;
  /** The W3C traceparent of the task's creation span (telemetry/tracing.ts traceNewTasks); null untraced. */
  trace_parent: string | null;
}

function newTaskRows(specs: TaskSpec[], rerunOf: string | null = null): NewTaskRow[] {
  return specs.map((spec) => ({
    id: randomUUID(),
    title: spec.title,
    description: spec.description,
    priority: spec.priority,
    priority_rank: priorityRank(spec.priority),
    risk_tier: spec.riskTier,
    mode: spec.mode,
    capability: spec.capability,
    spec,
    rerun_of: rerunOf,
    trace_parent: null,
  }));
}

/**
 * Writes new tasks in one statement whatever the count, then their audit entries, provenance records and
 * creation events in the unit's ordered one. `edited`: for a rerun, the fields its edits changed.
 */
async function insertTasks(
  unit: UnitOfWork,
  actor: Actor,
  rows: NewTaskRow[],
  client: ClientInfo | undefined,
  edited?: string[],
): Promise<void> {
  await unit.tx.$executeRawUnsafe(
    `INSERT INTO tasks (id, title, description, priority, priority_rank, risk_tier, mode, capability, spec, created_by, rerun_of,
                        trace_parent)
     SELECT x.id, x.title, x.description, x.priority::"TaskPriority", x.priority_rank, x.risk_tier,
            x.mode::"TaskMode", x.capability, x.spec, $2, x.rerun_of, x.trace_parent
       FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (id uuid, title text, description text, priority text,
            priority_rank int, risk_tier int, mode text, capability text, spec jsonb, rerun_of uuid, trace_parent text))
            WITH ORDINALITY AS x(id, title, description, priority, priority_rank, risk_tier, mode, capability, spec, rerun_of,
                                 trace_parent, n)
      ORDER BY x.n`,
    JSON.stringify(rows),
    actor.id,
  );
  for (const r of rows) {
    unit.audit.push(createdEntry(actor, r.id, r.spec, client, r.rerun_of, edited));
    unit.provenance.push(taskCreated(r.id, r.spec, actor, r.rerun_of ?? undefined));
    unit.events.push({
      taskId: r.id,
      type: "created",
      toState: "queued",
      actor: actor.id,
      data: r.rerun_of ? { title: r.title, rerunOf: r.rerun_of } : { title: r.title },
    });
  }
}

function createdEntry(
  actor: Actor,
  id: string,
  spec: TaskSpec,
  client: ClientInfo | undefined,
  rerunOf: string | null = null,
  edited: string[] = [],
): NewAuditEntry {
  return {
    actor,
    action: rerunOf ? "task.rerun" : "task.create",
    resource: { type: "task", id },
    after: {
      state: "queued",
      title: spec.title,
      mode: spec.mode,
      priority: spec.priority,
      riskTier: spec.riskTier,
      capability: spec.capability,
      ...(rerunOf ? { rerunOf, edited } : {}),
    },
    ...(client ? { client } : {}),
  };
}

function actorTransitionRole(actor: Actor): TransitionActor {
  if (actor.kind === "system" || actor.kind === "worker") return "system";
  return actor.role === "admin" ? "admin" : "operator";
}

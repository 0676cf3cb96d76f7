import {
  assertTransition,
  IllegalTransitionError,
  type TaskState,
  type TransitionActor,
} from "../../shared/task-state.js";
import type { ClientInfo, NewAuditEntry } from "../audit/service.js";
import type { UnitOfWork } from "../db/unit-of-work.js";
import type { NewProvenanceRecord } from "../provenance/service.js";

/**
 * The one way a task changes state, for operators and the agency alike (claim, end, requeue, fail,
 * recover, cancel, retry, override, verdict): each step is checked against the transition table in
 * src/shared/task-state.ts, the row is updated only if it is still in the state the change expects
 * (set-based for a batch), and the audit entry, provenance records and events of every applied
 * change join the unit of work, so they commit with it or not at all.
 */

/** One transition of a change. A change may make several in one commit (e.g. a verdict, then an automatic retry). */
export interface StateStep {
  to: TaskState;
  /** Who makes it, as the table knows them: checked against the transition's `by`. */
  by: TransitionActor;
  /** The audit entry's actor (a user, a worker, or one of SYSTEM_ACTORS). */
  actor: NewAuditEntry["actor"];
  /** The event's actor column: a user id, "system" or "council". */
  eventActor: string;
  /** The audit action, e.g. `task.requeue`. */
  action: string;
  reason?: string | null;
  /** More for the event's data. */
  data?: Record<string, unknown>;
  /** More for the audit entry's `before` and `after`. */
  before?: Record<string, unknown>;
  after?: Record<string, unknown>;
  client?: ClientInfo;
}

/** Columns set with a change's state (whitelisted: see UPDATE_SQL). */
export interface TaskColumns {
  /** Defaults to the last step's reason (or null). */
  state_reason?: string | null;
  failures?: number;
  redispatches?: number;
  next_critique?: unknown;
  /** Sets queued_at to now(): the task joins the back of its priority's queue. */
  requeued?: boolean;
  waiting_reason?: string | null;
  cancel_requested_by?: string | null;
  /** ISO time or null. */
  cancel_requested_at?: string | null;
  cancel_reason?: string | null;
  cancel_confirmed?: boolean | null;
}

export interface StateChange {
  taskId: string;
  /** The state the change expects the task to be in: the update is fenced on it. */
  from: TaskState;
  steps: StateStep[];
  set?: TaskColumns;
  /** Records that go on the provenance log with the change, only if it applies. */
  provenance?: NewProvenanceRecord[];
}

export { IllegalTransitionError };

/** The state a change ends in; throws IllegalTransitionError if a step is not in the table or not for its actor. */
export function checkChange(change: StateChange): TaskState {
  let state = change.from;
  if (!change.steps.length) throw new Error(`A state change of task ${change.taskId} needs at least one step.`);
  for (const step of change.steps) {
    assertTransition(state, step.to, step.by);
    state = step.to;
  }
  return state;
}

const clip = (s: string, max: number) => (s.length > max ? s.slice(0, max) : s);

/** Adds a change's events, audit entries and records to the unit (for a change whose row is written). */
function record(unit: UnitOfWork, change: StateChange): void {
  let from = change.from;
  for (const step of change.steps) {
    const name = assertTransition(from, step.to, step.by).name;
    const reason = step.reason ? clip(step.reason, 2000) : null;
    unit.events.push({
      taskId: change.taskId,
      type: "state_changed",
      fromState: from,
      toState: step.to,
      actor: step.eventActor,
      data: { name, ...step.data, ...(reason ? { reason } : {}) } as never,
    });
    unit.audit.push({
      actor: step.actor,
      action: step.action,
      resource: { type: "task", id: change.taskId },
      before: { state: from, ...step.before },
      after: { state: step.to, ...step.after, ...(reason ? { reason } : {}) },
      ...(step.client ? { client: step.client } : {}),
    });
    from = step.to;
  }
  unit.provenance.push(...(change.provenance ?? []));
}

/**
 * One statement for any batch of changes: each row moves only if it is still in the change's `from`
 * state. Each column is set only where the change names it.
 */
const UPDATE_SQL = `
  UPDATE tasks t SET state = x.to_state::"TaskState", updated_at = now(),
         state_reason = CASE WHEN x.s ? 'state_reason' THEN x.s->>'state_reason' ELSE x.reason END,
         failures = CASE WHEN x.s ? 'failures' THEN (x.s->>'failures')::int ELSE t.failures END,
         redispatches = CASE WHEN x.s ? 'redispatches' THEN (x.s->>'redispatches')::int ELSE t.redispatches END,
         next_critique = CASE WHEN x.s ? 'next_critique' THEN NULLIF(x.s->'next_critique', 'null'::jsonb)
                              ELSE t.next_critique END,
         queued_at = CASE WHEN (x.s->>'requeued')::boolean THEN now() ELSE t.queued_at END,
         waiting_reason = CASE WHEN x.s ? 'waiting_reason' THEN x.s->>'waiting_reason' ELSE t.waiting_reason END,
         cancel_requested_by = CASE WHEN x.s ? 'cancel_requested_by' THEN x.s->>'cancel_requested_by'
                                    ELSE t.cancel_requested_by END,
         cancel_requested_at = CASE WHEN x.s ? 'cancel_requested_at' THEN (x.s->>'cancel_requested_at')::timestamptz
                                    ELSE t.cancel_requested_at END,
         cancel_reason = CASE WHEN x.s ? 'cancel_reason' THEN x.s->>'cancel_reason' ELSE t.cancel_reason END,
         cancel_confirmed = CASE WHEN x.s ? 'cancel_confirmed' THEN (x.s->>'cancel_confirmed')::boolean
                                 ELSE t.cancel_confirmed END
    FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, from_state text, to_state text, reason text, s jsonb)
   WHERE t.id = x.id AND t.state = x.from_state::"TaskState"
  RETURNING t.id`;

/**
 * Checks and applies a batch of changes in the unit's transaction; returns the ids of the tasks that
 * moved (the others were no longer in their `from` state). `strict`: the caller holds the rows'
 * locks and has read their states, so a change that does not apply is a bug: throw.
 */
export async function applyStateChanges(
  unit: UnitOfWork,
  changes: StateChange[],
  opts: { strict?: boolean } = {},
): Promise<Set<string>> {
  if (!changes.length) return new Set();
  const rows = changes.map((c) => {
    const to = checkChange(c);
    const reason = c.steps.at(-1)?.reason;
    return {
      id: c.taskId,
      from_state: c.from,
      to_state: to,
      reason: reason ? clip(reason, 2000) : null,
      s: c.set ?? {},
    };
  });
  const moved = await unit.tx.$queryRawUnsafe<{ id: string }[]>(UPDATE_SQL, JSON.stringify(rows));
  const applied = new Set(moved.map((r) => r.id));
  if (opts.strict && applied.size !== changes.length) {
    throw new Error(`${changes.length - applied.size} task(s) were not in the state their locked row showed.`);
  }
  for (const c of changes) if (applied.has(c.taskId)) record(unit, c);
  return applied;
}

/**
 * For changes a caller's own statement already applied, fenced on the same `from` state (the claim,
 * which moves tasks in the statement that picks them): checks them and adds their trail to the unit.
 */
export function recordStateChanges(unit: UnitOfWork, changes: StateChange[]): void {
  for (const c of changes) checkChange(c);
  for (const c of changes) record(unit, c);
}

/**
 * The one rule for an attempt that ended without an accepted result: it costs the task an attempt
 * when it counts, and the task goes back to the queue while it has attempts left, else it fails.
 */
export function requeueOrFail(opts: {
  attempt: number;
  failures: number;
  allowed: number;
  /** false: not the task's fault (an open breaker, our own shutdown): costs no attempt. */
  counts: boolean;
  /** false: the task fails whatever is left (the council could not judge). */
  mayRequeue: boolean;
  /** "failed" or "was lost". */
  what: string;
  error: string;
}): { state: "queued" | "failed"; failures: number; reason: string } {
  const failures = opts.failures + (opts.counts ? 1 : 0);
  const requeue = opts.mayRequeue && failures < opts.allowed;
  const reason = requeue
    ? `Attempt ${opts.attempt} ${opts.what} (${failures} of ${opts.allowed} allowed failures); queued again: ${opts.error}`
    : opts.counts
      ? `Attempt ${opts.attempt} ${opts.what} and no attempts are left (${failures} of ${opts.allowed}): ${opts.error}`
      : opts.error;
  return { state: requeue ? "queued" : "failed", failures, reason: clip(reason, 2000) };
}

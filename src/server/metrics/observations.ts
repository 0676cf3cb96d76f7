import type { TaskEventDto } from "../../shared/task-events.js";
import { VERDICT_STATES } from "../../shared/verdict.js";
import type { Database } from "../db/database.js";
import { FINISH_OUTCOMES, type FinishOutcome, type Observation } from "./window.js";

export interface AttemptTimes {
  taskId: string;
  number: number;
  workerId: string | null;
  state: string;
  queuedAt: Date;
  startedAt: Date;
  finishedAt: Date | null;
}

export type AttemptLookup = (keys: { taskId: string; number: number }[]) => Promise<AttemptTimes[]>;

const isOutcome = (s: string | null): s is FinishOutcome => FINISH_OUTCOMES.includes(s as FinishOutcome);
const attemptOf = (e: TaskEventDto): number | null => {
  const n = e.data.attempt;
  return typeof n === "number" && Number.isInteger(n) && n >= 1 ? n : null;
};
const isDispatch = (e: TaskEventDto) =>
  e.type === "state_changed" && e.fromState === "queued" && e.toState === "running";
/** A verdict on a completed attempt: its worker completed (an accepting one may wait for approval). */
const isVerdict = (e: TaskEventDto) =>
  e.toState !== null && (VERDICT_STATES.includes(e.toState) || e.toState === "awaiting_approval");
/** A person's approval or rejection of a task that waited for it. */
const isApprovalDecision = (e: TaskEventDto) =>
  e.type === "state_changed" && e.fromState === "awaiting_approval" && typeof e.data.waitedMs === "number";
/** An attempt ends with a verdict (its worker completed), back in the queue or failed. */
const isAttemptEnd = (e: TaskEventDto) =>
  e.type === "state_changed" &&
  e.fromState === "running" &&
  (isVerdict(e) || e.toState === "queued" || e.toState === "failed");

/** The events whose figures need the attempt's row (its timings and worker). */
export function attemptKeys(events: TaskEventDto[]): { taskId: string; number: number }[] {
  const keys = new Map<string, { taskId: string; number: number }>();
  for (const e of events) {
    if (!isDispatch(e) && !isAttemptEnd(e)) continue;
    const number = attemptOf(e);
    if (number !== null) keys.set(`${e.taskId}:${number}`, { taskId: e.taskId, number });
  }
  return [...keys.values()];
}

/** Turns committed task events (with the rows of the attempts they name) into metric observations. */
export function toObservations(events: TaskEventDto[], attempts: AttemptTimes[]): Observation[] {
  const byKey = new Map(attempts.map((a) => [`${a.taskId}:${a.number}`, a]));
  const out: Observation[] = [];
  for (const e of events) {
    const at = e.createdAt.getTime();
    if (e.type === "attempt_try_failed") {
      if (e.data.retryInMs !== null && e.data.retryInMs !== undefined) out.push({ kind: "retry", at });
      continue;
    }
    if (e.type !== "state_changed") continue;
    if (isOutcome(e.toState)) out.push({ kind: "finished", at, outcome: e.toState });
    if (isApprovalDecision(e)) {
      const decision = e.toState === "accepted" ? "approve" : "reject";
      out.push({ kind: "approval_decided", at, decision, waitMs: e.data.waitedMs as number });
      continue;
    }
    const number = attemptOf(e);
    const row = number === null ? undefined : byKey.get(`${e.taskId}:${number}`);
    if (isDispatch(e) && row) {
      out.push({ kind: "dispatched", at, queueWaitMs: row.startedAt.getTime() - row.queuedAt.getTime() });
    } else if (isAttemptEnd(e)) {
      // A lost attempt's finish time is when it was found, not when work stopped: no execution time.
      const finishedAt = row && (row.state === "completed" || row.state === "failed") ? row.finishedAt : null;
      out.push({
        kind: "attempt_ended",
        at,
        workerId: row?.workerId ?? null,
        ok: isVerdict(e),
        executionMs: row && finishedAt ? finishedAt.getTime() - row.startedAt.getTime() : null,
      });
    }
  }
  return out;
}

/** Reads the attempts named by `keys` in one statement. */
export function attemptLookup(db: Database): AttemptLookup {
  return async (keys) => {
    if (keys.length === 0) return [];
    // Plain SQL, not through the ORM: this runs for every batch of committed events.
    const rows = await db.query<{
      task_id: string;
      number: number;
      worker_id: string | null;
      state: string;
      queued_at: Date;
      started_at: Date;
      finished_at: Date | null;
    }>(
      `SELECT a.task_id, a.number, a.worker_id, a.state::text AS state, a.queued_at, a.started_at, a.finished_at
         FROM attempts a
         JOIN jsonb_to_recordset($1::jsonb) AS k(task_id uuid, number int)
           ON a.task_id = k.task_id AND a.number = k.number`,
      [JSON.stringify(keys.map((k) => ({ task_id: k.taskId, number: k.number })))],
    );
    return rows.map((r) => ({
      taskId: r.task_id,
      number: Number(r.number),
      workerId: r.worker_id,
      state: r.state,
      queuedAt: new Date(r.queued_at),
      startedAt: new Date(r.started_at),
      finishedAt: r.finished_at ? new Date(r.finished_at) : null,
    }));
  };
}

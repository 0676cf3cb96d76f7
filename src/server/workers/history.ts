import { WORKER_HISTORY_KEEP, type WorkerEventKind } from "../../shared/worker-detail.js";
import type { Database, Tx } from "../db/database.js";
import { DomainError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { BreakerChange } from "./breakers.js";

export interface NewWorkerEvent {
  workerId: string;
  kind: WorkerEventKind;
  from?: string | null;
  to?: string | null;
  reason?: string | null;
  taskId?: string | null;
  /** Who did it (an admin's id); null for the system's own changes. */
  actor?: string | null;
}

export interface WorkerEventView {
  seq: string;
  kind: WorkerEventKind;
  from: string | null;
  to: string | null;
  reason: string | null;
  taskId: string | null;
  actor: string | null;
  at: Date;
}

/**
 * Writes one row and, in the same statement, prunes the worker's rows older than its newest
 * WORKER_HISTORY_KEEP (the DELETE sees the rows from before the INSERT, so it keeps KEEP - 1 of them).
 */
const INSERT_SQL = `
  WITH added AS (
    INSERT INTO worker_events (worker_id, kind, from_state, to_state, reason, task_id, actor)
    SELECT $1::uuid, $2, $3, $4, $5, $6::uuid, $7 WHERE EXISTS (SELECT 1 FROM workers WHERE id = $1::uuid)
    RETURNING seq
  )
  DELETE FROM worker_events
   WHERE worker_id = $1::uuid
     AND seq <= (SELECT seq FROM worker_events WHERE worker_id = $1::uuid ORDER BY seq DESC OFFSET ${WORKER_HISTORY_KEEP - 1} LIMIT 1)`;

const params = (e: NewWorkerEvent) => [
  e.workerId,
  e.kind,
  e.from ?? null,
  e.to ?? null,
  e.reason ? e.reason.slice(0, 2000) : null,
  e.taskId ?? null,
  e.actor ?? null,
];

/** A worker's history (worker_events): written by breaker changes, health checks and admins' actions. */
export class WorkerHistory {
  constructor(
    private readonly db: Database,
    private readonly log: Logger,
  ) {}

  /** Inside the transaction of the change it describes (an admin's action). */
  async recordIn(tx: Tx, e: NewWorkerEvent): Promise<void> {
    await tx.$executeRawUnsafe(INSERT_SQL, ...params(e));
  }

  /** On its own (a health check's or a breaker's change): a failure is logged, never thrown. */
  async record(e: NewWorkerEvent): Promise<void> {
    await this.db
      .query(INSERT_SQL, params(e))
      .catch((err: unknown) =>
        this.log.warn({ err, workerId: e.workerId, kind: e.kind }, "recording worker history failed"),
      );
  }

  /**
   * A breaker's automatic change (open, half-open, closed by probes). An admin's trip and reset are
   * recorded by the action itself, with its actor and reason.
   */
  recordBreakerChange(c: BreakerChange): Promise<void> {
    if (c.byAdmin) return Promise.resolve();
    return this.record({
      workerId: c.workerId,
      kind: "breaker",
      from: c.from,
      to: c.to,
      reason: c.reason,
      taskId: c.taskId,
    });
  }

  /** Newest first, `limit` rows after `cursor` (a `seq`). */
  async list(
    workerId: string,
    limit: number,
    cursor: string | null | undefined,
  ): Promise<{ items: WorkerEventView[]; nextCursor: string | null }> {
    if (cursor && !/^\d{1,19}$/.test(cursor))
      throw new DomainError("BAD_REQUEST", "History cursor is not one this server gave.");
    const rows = await this.db.query<{
      seq: string | bigint;
      kind: WorkerEventKind;
      from_state: string | null;
      to_state: string | null;
      reason: string | null;
      task_id: string | null;
      actor: string | null;
      created_at: Date | string;
    }>(
      `SELECT seq, kind, from_state, to_state, reason, task_id, actor, created_at FROM worker_events
        WHERE worker_id = $1::uuid ${cursor ? "AND seq < $3::bigint" : ""}
        ORDER BY seq DESC LIMIT $2`,
      cursor ? [workerId, limit + 1, cursor] : [workerId, limit + 1],
    );
    const items = rows.slice(0, limit).map((r) => ({
      seq: String(r.seq),
      kind: r.kind,
      from: r.from_state,
      to: r.to_state,
      reason: r.reason,
      taskId: r.task_id,
      actor: r.actor,
      at: new Date(r.created_at),
    }));
    return { items, nextCursor: rows.length > limit ? (items.at(-1)?.seq ?? null) : null };
  }
}

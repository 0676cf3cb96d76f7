import type { TaskSpec } from "../../shared/task-spec.js";
import type { Critique } from "../../shared/worker-protocol.js";
import type { WorkerProtocol } from "../../shared/workers.js";
import type { Database, Tx } from "../db/database.js";
import type { WorkerTarget } from "./worker-client.js";

/**
 * The execution engine's SQL, one function per statement (as graphile-worker keeps its own). The
 * claim and the end of a batch of attempts are statements of claim.ts and finisher.ts, with the
 * state changes they make; task state itself changes only through tasks/state-changes.ts.
 */

export interface EnabledWorkerRow {
  id: string;
  name: string;
  capabilities: string[] | null;
  max_concurrency: number;
  tripped: boolean;
  health: string;
  /** An admin's pause or drain: active, paused, draining, drained. */
  dispatch_state: string;
  busy: number;
}

/** The enabled workers with their running attempts (one plain query per dispatch pass). */
export const enabledWorkers = (db: Database) =>
  db.query<EnabledWorkerRow>(
    `SELECT w.id, w.name, w.capabilities, w.max_concurrency, w.tripped, w.health, w.dispatch_state,
            (SELECT count(*) FROM attempts a WHERE a.worker_id = w.id AND a.state = 'running')::int AS busy
       FROM workers w WHERE w.enabled`,
  );

export const queuedCapabilities = (db: Database) =>
  db.query<{ capability: string }>(`SELECT DISTINCT capability FROM tasks WHERE state = 'queued'`);

/** Only the rows whose reason changes. */
export const setWaitingReason = (db: Database, capability: string, reason: string | null) =>
  db.query(
    `UPDATE tasks SET waiting_reason = $2
      WHERE state = 'queued' AND capability = $1 AND waiting_reason IS DISTINCT FROM $2`,
    [capability, reason],
  );

/** Renews this process's leases on the given attempts; returns those still held. */
export const renewLeases = (db: Database, owner: string, leaseMs: number, attemptIds: string[]) =>
  db.query<{ id: string }>(
    `UPDATE attempts SET lease_expires_at = now() + make_interval(secs => $2::int / 1000.0)
      WHERE lease_owner = $1 AND state = 'running' AND id = ANY($3::uuid[]) RETURNING id`,
    [owner, leaseMs, attemptIds],
  );

/** Whether this process holds the attempt's lease and it still runs. */
export const holdsLease = async (db: Database, attemptId: string, owner: string) =>
  (
    await db.query(`SELECT 1 FROM attempts WHERE id = $1::uuid AND state = 'running' AND lease_owner = $2`, [
      attemptId,
      owner,
    ])
  ).length > 0;

/** Releases this process's leases at once (a handback at shutdown); returns the attempts released. */
export const releaseLeases = (db: Database, attemptIds: string[], owner: string) =>
  db.query<{ id: string; task_id: string; number: number }>(
    `UPDATE attempts SET lease_owner = NULL, lease_expires_at = now()
      WHERE id = ANY($1::uuid[]) AND lease_owner = $2 AND state = 'running'
      RETURNING id, task_id, number`,
    [attemptIds, owner],
  );

/** A running attempt whose lease expired, with what re-attaching to it needs. */
export interface ExpiredRow {
  attempt_id: string;
  task_id: string;
  number: number;
  lease_owner: string | null;
  recoveries: number;
  started_at: Date;
  critique: Critique | null;
  task_state: string;
  spec: TaskSpec;
  risk_tier: number;
  trace_parent: string | null;
  worker_id: string | null;
  worker_name: string | null;
  url: string | null;
  token: string | null;
  capabilities: string[] | null;
  protocol: WorkerProtocol | null;
}

/** Running attempts whose lease expired (or was released), oldest first, but those running here. */
export const expiredAttempts = (db: Database, runningHere: string[]) =>
  db.query<ExpiredRow>(
    `SELECT a.id AS attempt_id, a.task_id, a.number, a.lease_owner, a.recoveries, a.started_at, a.critique,
            t.state AS task_state, t.spec, t.risk_tier::int AS risk_tier, t.trace_parent,
            w.id AS worker_id, w.name AS worker_name, w.url, w.token, w.capabilities, w.protocol
       FROM attempts a JOIN tasks t ON t.id = a.task_id LEFT JOIN workers w ON w.id = a.worker_id
      WHERE a.state = 'running' AND a.lease_expires_at < now() AND NOT (a.id = ANY($1::uuid[]))
      ORDER BY a.lease_expires_at
      LIMIT 500`,
    [runningHere],
  );

/**
 * Takes expired leases, fenced on the owner each was read with (so one process wins), counting a
 * recovery unless the lease was handed back; not past `recoveryLimit`.
 */
export const takeExpiredLeases = (
  db: Database,
  rows: { attempt_id: string; lease_owner: string | null }[],
  owner: string,
  leaseMs: number,
  recoveryLimit: number,
) =>
  db.query<{ id: string; recoveries: number }>(
    `UPDATE attempts a SET lease_owner = $2, lease_expires_at = now() + make_interval(secs => $3::int / 1000.0),
            recoveries = a.recoveries + CASE WHEN a.lease_owner IS NULL THEN 0 ELSE 1 END
       FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, owner text), tasks t
      WHERE a.id = x.id AND a.lease_owner IS NOT DISTINCT FROM x.owner AND a.state = 'running'
        AND a.lease_expires_at < now() AND t.id = a.task_id AND t.state = 'running'
        AND (a.lease_owner IS NULL OR a.recoveries < $4)
      RETURNING a.id, a.recoveries`,
    [JSON.stringify(rows.map((r) => ({ id: r.attempt_id, owner: r.lease_owner }))), owner, leaseMs, recoveryLimit],
  );

export interface LockedExpiredRow {
  attempt_id: string;
  number: number;
  lease_owner: string | null;
  recoveries: number;
  task_id: string;
  task_state: string;
  failures: number;
  redispatches: number;
  risk_tier: number;
}

/** Locks expired attempts and their tasks (skipping those another process is handling). */
export const lockExpired = (tx: Tx, attemptIds: string[]) =>
  tx.$queryRawUnsafe<LockedExpiredRow[]>(
    `SELECT a.id AS attempt_id, a.number, a.lease_owner, a.recoveries, t.id AS task_id, t.state AS task_state,
            t.failures, t.redispatches, t.risk_tier::int AS risk_tier
       FROM attempts a JOIN tasks t ON t.id = a.task_id
      WHERE a.id IN (SELECT jsonb_array_elements_text($1::jsonb)::uuid)
        AND a.state = 'running' AND a.lease_expires_at < now()
      FOR UPDATE OF a, t SKIP LOCKED`,
    JSON.stringify(attemptIds),
  );

export const markAttemptLost = (tx: Tx, attemptId: string, error: string) =>
  tx.$executeRawUnsafe(
    `UPDATE attempts SET state = 'lost', finished_at = now(), error = $2, lease_owner = NULL, lease_expires_at = NULL
      WHERE id = $1::uuid`,
    attemptId,
    error,
  );

/** Ends a running attempt as canceled; false when it had ended meanwhile. */
export const cancelAttempt = async (tx: Tx, attemptId: string, error: string) =>
  (
    await tx.$queryRawUnsafe<unknown[]>(
      `UPDATE attempts SET state = 'canceled', finished_at = now(), error = $2, lease_owner = NULL,
              lease_expires_at = NULL
        WHERE id = $1::uuid AND state = 'running' RETURNING id`,
      attemptId,
      error,
    )
  ).length > 0;

/** A canceling task's request, locked; none when the task is not canceling. */
export const lockCanceling = (tx: Tx, taskId: string) =>
  tx.$queryRawUnsafe<{ by: string | null; reason: string | null }[]>(
    `SELECT cancel_requested_by AS by, cancel_reason AS reason FROM tasks
      WHERE id = $1::uuid AND state = 'canceling' FOR UPDATE`,
    taskId,
  );

/** Tasks canceling for longer than `olderThanMs` with nothing running any more. */
export const stuckCancels = (db: Database, olderThanMs: number) =>
  db.query<{ id: string }>(
    `SELECT t.id FROM tasks t
      WHERE t.state = 'canceling' AND t.cancel_requested_at < now() - make_interval(secs => $1::int / 1000.0)
        AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.task_id = t.id AND a.state = 'running')
      LIMIT 500`,
    [olderThanMs],
  );

/** A task's running attempt (the latest), with its worker when it still exists. */
export const runningAttemptOf = async (db: Database, taskId: string) => {
  const [row] = await db.query<{
    id: string;
    number: number;
    worker_id: string | null;
    name: string | null;
    url: string | null;
    token: string | null;
    protocol: WorkerProtocol | null;
  }>(
    `SELECT a.id, a.number, w.id AS worker_id, w.name, w.url, w.token, w.protocol
       FROM attempts a LEFT JOIN workers w ON w.id = a.worker_id
      WHERE a.task_id = $1::uuid AND a.state = 'running'
      ORDER BY a.number DESC LIMIT 1`,
    [taskId],
  );
  if (!row) return null;
  const worker: WorkerTarget | null =
    row.worker_id && row.name && row.url
      ? { id: row.worker_id, name: row.name, url: row.url, token: row.token, protocol: row.protocol ?? "v1" }
      : null;
  return { id: row.id, number: Number(row.number), worker };
};

/** A task's trace: the `traceparent` of its creation span (null when it was created untraced). */
export const traceParentOf = async (db: Database, taskId: string): Promise<string | null> => {
  const [row] = await db.query<{ trace_parent: string | null }>("SELECT trace_parent FROM tasks WHERE id = $1::uuid", [
    taskId,
  ]);
  return row?.trace_parent ?? null;
};

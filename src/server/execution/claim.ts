import type { TaskSpec } from "../../shared/task-spec.js";
import type { Critique } from "../../shared/worker-protocol.js";
import { auditInsertSql, auditRowsJson } from "../audit/service.js";
import { SYSTEM_ACTORS, type Trail } from "../audit/trail.js";
import { EVENT_LOG_LOCK_KEY } from "../events/append.js";
import { provenanceInsertSql } from "../provenance/service.js";
import { taskDispatched } from "../tasks/decisions.js";

export interface ClaimedAttempt {
  attemptId: string;
  taskId: string;
  number: number;
  spec: TaskSpec;
  riskTier: number;
  critique: Critique | null;
}

interface ClaimRow {
  attempt_id: string;
  task_id: string;
  number: number;
  spec: TaskSpec;
  risk_tier: number;
  critique: Critique | null;
}

/**
 * Claims up to `limit` queued tasks for one worker in one transaction: highest priority first, then
 * longest queued, only capabilities the worker has, never more than its free slots, skipping rows
 * another process is claiming (SKIP LOCKED). Each claimed task moves to `running` with a new
 * attempt that holds this process's lease. Each dispatch is audited and put on the provenance chain
 * in the same transaction; the chain's records and the task events are written in one statement.
 */
export async function claimForWorker(
  trail: Trail,
  worker: { id: string; name: string; capabilities: string[] },
  limit: number,
  owner: string,
  leaseMs: number,
): Promise<ClaimedAttempt[]> {
  const rows = await trail.rawTransaction(async (tx) => {
    // Serializes claims for this worker across processes, so the free-slot count below (read in a
    // fresh snapshot after the lock) cannot be overrun by a concurrent claim. While another process
    // holds the lock it is filling this worker's free slots itself: skip rather than wait for it
    // (the next pass, on the next finished attempt or the dispatch interval, looks again).
    const locked = await tx.$queryRawUnsafe<{ id: string }[]>(
      `SELECT id FROM workers WHERE id = $1::uuid AND enabled FOR UPDATE SKIP LOCKED`,
      worker.id,
    );
    if (locked.length === 0) return [];
    const claimed = await tx.$queryRawUnsafe<ClaimRow[]>(
      `WITH free AS (
         SELECT GREATEST(0, w.max_concurrency -
                (SELECT count(*) FROM attempts a WHERE a.worker_id = w.id AND a.state = 'running'))::int AS n
           FROM workers w WHERE w.id = $1::uuid
       ), picked AS (
         SELECT t.id, t.next_critique FROM tasks t
          WHERE t.state = 'queued'
            AND t.capability IN (SELECT jsonb_array_elements_text($2::jsonb))
          ORDER BY t.priority_rank DESC, t.queued_at ASC, t.seq ASC
          LIMIT LEAST((SELECT n FROM free), $3::int)
          FOR UPDATE SKIP LOCKED
       ), claimed AS (
         UPDATE tasks t SET state = 'running', attempt = t.attempt + 1, updated_at = now(),
                waiting_reason = NULL, state_reason = NULL, next_critique = NULL
           FROM picked WHERE t.id = picked.id
         RETURNING t.id, t.attempt, t.spec, t.risk_tier, t.queued_at, picked.next_critique
       ), inserted AS (
         INSERT INTO attempts (id, task_id, number, worker_id, state, lease_owner, lease_expires_at, queued_at, started_at, critique)
         SELECT gen_random_uuid(), c.id, c.attempt, $1::uuid, 'running', $4,
                now() + make_interval(secs => $5::int / 1000.0), c.queued_at, now(), c.next_critique
           FROM claimed c
         RETURNING id, task_id, number, critique
       )
       SELECT i.id AS attempt_id, i.task_id, i.number, c.spec, c.risk_tier::int AS risk_tier, i.critique
         FROM inserted i JOIN claimed c ON c.id = i.task_id`,
      worker.id,
      JSON.stringify(worker.capabilities),
      limit,
      owner,
      leaseMs,
    );
    if (claimed.length) {
      // The audit entries first: they need no order beyond the row locks above.
      await tx.$executeRawUnsafe(
        auditInsertSql("$1"),
        auditRowsJson(
          claimed.map((r) => ({
            actor: SYSTEM_ACTORS.dispatcher,
            action: "task.dispatch",
            resource: { type: "task", id: r.task_id },
            before: { state: "queued" },
            after: { state: "running", attempt: Number(r.number), worker: worker.name, workerId: worker.id },
          })),
        ),
      );
      // Then, in this process's turn on the chain until the commit, what must be ordered: lock order as
      // everywhere, row locks (above), then the provenance chain's, then the event log's (last, after the chain's insert).
      const prepared = await trail.prepare(
        tx,
        [],
        claimed.map((r) =>
          taskDispatched(
            r.task_id,
            { id: r.attempt_id, number: Number(r.number) },
            { id: worker.id, name: worker.name },
          ),
        ),
      );
      await tx.$executeRawUnsafe(
        `WITH chain AS (${provenanceInsertSql("$4")}),
         lock AS (SELECT pg_advisory_xact_lock(${EVENT_LOG_LOCK_KEY}::bigint) FROM (SELECT count(*) FROM chain) c)
         INSERT INTO task_events (task_id, type, from_state, to_state, actor, data)
         SELECT x.task_id, 'state_changed', 'queued', 'running', 'system',
                jsonb_build_object('name', 'dispatch', 'attempt', x.number, 'worker', $2::text, 'workerId', $3::text)
                || CASE WHEN x.critique_from IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('critiqueFrom', x.critique_from) END
           FROM lock, jsonb_to_recordset($1::jsonb) AS x(task_id uuid, number int, critique_from int)`,
        JSON.stringify(
          claimed.map((r) => ({
            task_id: r.task_id,
            number: r.number,
            critique_from: r.critique?.fromAttempt ?? null,
          })),
        ),
        worker.name,
        worker.id,
        prepared.provenanceJson,
      );
    }
    return claimed;
  });
  return rows.map((r) => ({
    attemptId: r.attempt_id,
    taskId: r.task_id,
    number: Number(r.number),
    spec: r.spec,
    riskTier: Number(r.risk_tier),
    critique: r.critique,
  }));
}

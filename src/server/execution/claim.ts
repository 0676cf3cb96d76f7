import type { TaskSpec } from "../../shared/task-spec.js";
import type { Critique } from "../../shared/worker-protocol.js";
import type { WorkerProtocol } from "../../shared/workers.js";
import { SYSTEM_ACTORS } from "../audit/trail.js";
import type { UnitOfWork, UnitOfWorkRunner } from "../db/unit-of-work.js";
import { taskDispatched } from "../tasks/decisions.js";
import { recordStateChanges, type StateChange } from "../tasks/state-changes.js";

export interface ClaimedAttempt {
  attemptId: string;
  taskId: string;
  number: number;
  spec: TaskSpec;
  riskTier: number;
  critique: Critique | null;
  /** The task's trace (the `traceparent` of its creation span), or null when it was created untraced. */
  traceParent: string | null;
  /** Epoch ms when the claim began (claims only; a re-attached attempt has none). */
  claimedAt?: number;
}

interface ClaimRow {
  attempt_id: string;
  task_id: string;
  number: number;
  spec: TaskSpec;
  risk_tier: number;
  critique: Critique | null;
  trace_parent: string | null;
}

/** A claimed (or re-attached) attempt from its row. */
export const toClaimedAttempt = (r: ClaimRow): ClaimedAttempt => ({
  attemptId: r.attempt_id,
  taskId: r.task_id,
  number: Number(r.number),
  spec: r.spec,
  riskTier: Number(r.risk_tier),
  critique: r.critique,
  traceParent: r.trace_parent ?? null,
});

/** The worker as its row is when claimed for: what launching the claimed attempts needs. */
export interface ClaimWorker {
  id: string;
  name: string;
  url: string;
  token: string | null;
  capabilities: string[];
  /** "v1" or "a2a" (absent: v1). */
  protocol?: WorkerProtocol;
}

/** Claimed attempts: launch them once their unit of work has committed. */
export interface Claim {
  worker: ClaimWorker;
  claimed: ClaimedAttempt[];
}

/**
 * Claims up to `limit` queued tasks for one worker in one unit of work: highest priority first, then
 * longest queued, only capabilities the worker has, never more than its free slots, skipping rows
 * another process is claiming (SKIP LOCKED). Each claimed task moves to `running` with a new
 * attempt that holds this process's lease, audited, on the provenance log and in the event log.
 * Null when the worker is disabled, tripped, paused or draining, or gone, or another process is claiming for it.
 */
export function claimForWorker(
  units: UnitOfWorkRunner,
  workerId: string,
  limit: number,
  owner: string,
  leaseMs: number,
): Promise<Claim | null> {
  return units.run((unit) => claimRows(unit, { workerId, limit, owner, leaseMs, lockWorker: true }));
}

/** The claim statement: picks, moves to `running` (fenced on `queued` by the row locks) and inserts the attempts. */
const CLAIM_SQL = `
  WITH free AS (
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
      FROM picked WHERE t.id = picked.id AND t.state = 'queued'
    RETURNING t.id, t.attempt, t.spec, t.risk_tier, t.queued_at, t.trace_parent, picked.next_critique
  ), inserted AS (
    INSERT INTO attempts (id, task_id, number, worker_id, state, lease_owner, lease_expires_at, queued_at, started_at, critique)
    SELECT gen_random_uuid(), c.id, c.attempt, $1::uuid, 'running', $4,
           now() + make_interval(secs => $5::int / 1000.0), c.queued_at, now(), c.next_critique
      FROM claimed c
    RETURNING id, task_id, number, critique
  )
  SELECT i.id AS attempt_id, i.task_id, i.number, c.spec, c.risk_tier::int AS risk_tier, i.critique, c.trace_parent
    FROM inserted i JOIN claimed c ON c.id = i.task_id`;

/**
 * Claims in the caller's unit of work: tasks to `running` and their attempts, with each task's
 * state change (audit entry, provenance record, event) added to the unit.
 *
 * `lockWorker` serializes claims for the worker across processes, so the free-slot count (read in a
 * fresh snapshot after the lock) cannot be overrun by a concurrent claim; while another process holds
 * the lock it is filling the worker's free slots itself, so this one skips rather than waits. Without
 * it (refilling, in the unit that ended attempts, at most the slots that unit freed) the running
 * count cannot grow, so no lock is needed and concurrent refills do not skip each other.
 */
export async function claimRows(
  unit: UnitOfWork,
  opts: { workerId: string; limit: number; owner: string; leaseMs: number; lockWorker: boolean },
): Promise<Claim | null> {
  const claimedAt = Date.now();
  const [worker] = await unit.tx.$queryRawUnsafe<(ClaimWorker & { capabilities: string[] | null })[]>(
    `SELECT id, name, url, token, capabilities, protocol FROM workers
      WHERE id = $1::uuid AND enabled AND NOT tripped AND dispatch_state = 'active'
     ${opts.lockWorker ? "FOR UPDATE SKIP LOCKED" : ""}`,
    opts.workerId,
  );
  if (!worker) return null;
  worker.capabilities ??= [];
  const rows = await unit.tx.$queryRawUnsafe<ClaimRow[]>(
    CLAIM_SQL,
    worker.id,
    JSON.stringify(worker.capabilities),
    opts.limit,
    opts.owner,
    opts.leaseMs,
  );
  const claimed = rows.map((r) => ({ ...toClaimedAttempt(r), claimedAt }));
  recordStateChanges(
    unit,
    claimed.map(
      (c): StateChange => ({
        taskId: c.taskId,
        from: "queued",
        steps: [
          {
            to: "running",
            by: "system",
            actor: SYSTEM_ACTORS.dispatcher,
            eventActor: "system",
            action: "task.dispatch",
            data: {
              attempt: c.number,
              worker: worker.name,
              workerId: worker.id,
              ...(c.critique ? { critiqueFrom: c.critique.fromAttempt } : {}),
            },
            after: { attempt: c.number, worker: worker.name, workerId: worker.id },
          },
        ],
        provenance: [
          taskDispatched(c.taskId, { id: c.attemptId, number: c.number }, { id: worker.id, name: worker.name }),
        ],
      }),
    ),
  );
  return { worker, claimed };
}

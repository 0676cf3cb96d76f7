import type { Database } from "../db/database.js";

/**
 * Why an attempt ran: the task was submitted (the first attempt), an operator retried it, the council's
 * "changes requested" sent it back automatically (the n-th of the task's automatic budget), or the agency
 * queued it again after a failed or lost attempt.
 */
export type AttemptOrigin =
  | { kind: "submitted"; by: string; at: Date }
  | { kind: "retry"; by: string; at: Date; autoLeft: number | null; autoMax: number | null }
  | { kind: "automatic"; at: Date; redispatch: number; of: number }
  | { kind: "requeue"; at: Date; reason: string | null };

interface QueuedEvent {
  type: string;
  actor: string;
  data: Record<string, unknown>;
  createdAt: Date;
}

const int = (v: unknown): number | null => (typeof v === "number" && Number.isInteger(v) ? v : null);

/**
 * The attempt a queueing event led to. A retry names it (`data.retry.attempt`); an automatic re-dispatch and
 * a requeue follow the attempt they name (`data.attempt`); a retry recorded before retries named their
 * attempt follows the last attempt started before it.
 */
function attemptOf(e: QueuedEvent, startedAt: readonly Date[]): number | null {
  if (e.type === "created") return 1;
  const retry = e.data.retry as { attempt?: unknown } | undefined;
  const named = int(retry?.attempt);
  if (named !== null) return named;
  const after = int(e.data.attempt);
  if (after !== null) return after + 1;
  return startedAt.filter((s) => s.getTime() <= e.createdAt.getTime()).length + 1;
}

function originOf(e: QueuedEvent): AttemptOrigin {
  if (e.type === "created") return { kind: "submitted", by: e.actor, at: e.createdAt };
  const d = e.data;
  if (d.automatic === true) {
    return { kind: "automatic", at: e.createdAt, redispatch: int(d.redispatch) ?? 0, of: int(d.of) ?? 0 };
  }
  if (d.name === "retry") {
    const budget = d.autoRedispatch as { left?: unknown; max?: unknown } | undefined;
    return {
      kind: "retry",
      by: e.actor,
      at: e.createdAt,
      autoLeft: int(budget?.left),
      autoMax: int(budget?.max),
    };
  }
  return { kind: "requeue", at: e.createdAt, reason: typeof d.reason === "string" ? d.reason : null };
}

/**
 * Each attempt's origin, from the task's queueing events (its creation and every move to `queued`): one
 * range of the (task_id, seq) index, a few rows per attempt. The latest event for an attempt wins (a task
 * canceled while queued and retried again ran because of the second retry).
 */
export async function attemptOrigins(
  db: Database,
  taskId: string,
  attempts: readonly { number: number; startedAt: Date }[],
): Promise<Map<number, AttemptOrigin>> {
  const rows = await db.query<QueuedEvent>(
    `SELECT type, actor, data, created_at AS "createdAt" FROM task_events
      WHERE task_id = $1::uuid AND (type = 'created' OR (type = 'state_changed' AND to_state = 'queued'))
      ORDER BY seq`,
    [taskId],
  );
  const started = attempts.map((a) => a.startedAt);
  const out = new Map<number, AttemptOrigin>();
  for (const e of rows) {
    const n = attemptOf({ ...e, data: (e.data ?? {}) as Record<string, unknown> }, started);
    if (n !== null) out.set(n, originOf({ ...e, data: (e.data ?? {}) as Record<string, unknown> }));
  }
  return out;
}

import { ACTIVITY_RANGES, type ActivityBucket, type ActivityRange } from "../../shared/worker-detail.js";
import type { Database } from "../db/database.js";
import { DomainError } from "../errors.js";

/**
 * A worker's ended attempts over time, bucketed by start time, with the failed share (failed or lost) and
 * the p50/p95 run time (started to finished): counted and ranked in SQL, so only one row per bucket leaves
 * the database. Buckets without attempts are filled in, so the series is regular.
 */
export async function workerActivity(
  db: Database,
  workerId: string,
  range: ActivityRange,
  now = Date.now(),
): Promise<{ range: ActivityRange; bucketMs: number; from: number; to: number; buckets: ActivityBucket[] }> {
  const { rangeMs, bucketMs } = ACTIVITY_RANGES[range];
  const to = Math.floor(now / bucketMs) * bucketMs + bucketMs;
  const from = to - Math.ceil(rangeMs / bucketMs) * bucketMs;
  const rows = await db.query<{
    bucket: string | number;
    attempts: number;
    failed: number;
    p50: number | string | null;
    p95: number | string | null;
  }>(
    `SELECT (floor(extract(epoch FROM a.started_at) * 1000 / $2::bigint) * $2::bigint)::bigint AS bucket,
            count(*)::int AS attempts,
            count(*) FILTER (WHERE a.state IN ('failed', 'lost'))::int AS failed,
            percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM a.finished_at - a.started_at) * 1000)
              AS p50,
            percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM a.finished_at - a.started_at) * 1000)
              AS p95
       FROM attempts a
      WHERE a.worker_id = $1::uuid AND a.state <> 'running' AND a.finished_at IS NOT NULL
        AND a.started_at >= to_timestamp($3::bigint / 1000.0) AND a.started_at < to_timestamp($4::bigint / 1000.0)
      GROUP BY 1 ORDER BY 1`,
    [workerId, bucketMs, from, to],
  );
  const byStart = new Map(rows.map((r) => [Number(r.bucket), r]));
  const buckets: ActivityBucket[] = [];
  for (let start = from; start < to; start += bucketMs) {
    const r = byStart.get(start);
    const attempts = r ? Number(r.attempts) : 0;
    const failed = r ? Number(r.failed) : 0;
    buckets.push({
      start,
      attempts,
      failed,
      failedShare: attempts ? failed / attempts : null,
      p50Ms: r?.p50 == null ? null : Math.round(Number(r.p50)),
      p95Ms: r?.p95 == null ? null : Math.round(Number(r.p95)),
    });
  }
  return { range, bucketMs, from, to, buckets };
}

export interface WorkerAttemptRow {
  attemptId: string;
  number: number;
  state: string;
  startedAt: Date;
  finishedAt: Date | null;
  durationMs: number | null;
  error: string | null;
  verdict: string | null;
  task: { id: string; title: string; state: string; capability: string };
}

const CURSOR = /^(\d{1,15})_([0-9a-f-]{36})$/;

/** The attempts the worker ran (the tasks it ran, each with this attempt's outcome), newest first, keyset-paged. */
export async function workerAttempts(
  db: Database,
  workerId: string,
  limit: number,
  cursor: string | null | undefined,
): Promise<{ items: WorkerAttemptRow[]; nextCursor: string | null }> {
  const m = cursor ? CURSOR.exec(cursor) : null;
  if (cursor && !m)
    throw new DomainError("BAD_REQUEST", "The page cursor is invalid; reload the list from its first page.");
  const rows = await db.query<{
    id: string;
    number: number;
    state: string;
    started_at: Date | string;
    finished_at: Date | string | null;
    error: string | null;
    verdict: string | null;
    task_id: string;
    title: string;
    task_state: string;
    capability: string;
  }>(
    `SELECT a.id, a.number, a.state, a.started_at, a.finished_at, left(a.error, 500) AS error, a.verdict,
            t.id AS task_id, t.title, t.state AS task_state, t.capability
       FROM attempts a JOIN tasks t ON t.id = a.task_id
      WHERE a.worker_id = $1::uuid
        ${m ? "AND (a.started_at, a.id) < ($3::timestamptz, $4::uuid)" : ""}
      ORDER BY a.started_at DESC, a.id DESC
      LIMIT $2`,
    m ? [workerId, limit + 1, new Date(Number(m[1])).toISOString(), m[2]] : [workerId, limit + 1],
  );
  const items = rows.slice(0, limit).map((r): WorkerAttemptRow => {
    const startedAt = new Date(r.started_at);
    const finishedAt = r.finished_at ? new Date(r.finished_at) : null;
    return {
      attemptId: r.id,
      number: Number(r.number),
      state: r.state,
      startedAt,
      finishedAt,
      durationMs: finishedAt ? finishedAt.getTime() - startedAt.getTime() : null,
      error: r.error,
      verdict: r.verdict,
      task: { id: r.task_id, title: r.title, state: r.task_state, capability: r.capability },
    };
  });
  const last = items.at(-1);
  return {
    items,
    nextCursor: rows.length > limit && last ? `${last.startedAt.getTime()}_${last.attemptId}` : null,
  };
}

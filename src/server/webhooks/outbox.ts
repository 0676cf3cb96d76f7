import { randomUUID } from "node:crypto";
import { TASK_STATE_EVENTS, type WebhookEventType } from "../../shared/webhooks.js";
import type { Database, SqlRunner } from "../db/database.js";
import { type TaskEventFacts, taskPayload, type WebhookPayload } from "./payload.js";

/** The SQL of the delivery outbox, one function per statement. */

const TASK_CURSOR = "task_events";
/** Task events turned into deliveries per transaction. */
const FANOUT_BATCH = 500;

export interface NewDelivery {
  endpointId: string;
  eventId: string;
  payload: WebhookPayload;
  replayOf?: string;
}

/** Inserts deliveries; an (endpoint, event) pair that has one already is skipped (replays excepted). */
export async function insertDeliveries(conn: SqlRunner, rows: NewDelivery[]): Promise<number> {
  if (!rows.length) return 0;
  const json = JSON.stringify(
    rows.map((r) => ({
      id: randomUUID(),
      endpoint_id: r.endpointId,
      event_id: r.eventId,
      event_type: r.payload.type,
      payload: r.payload,
      replay_of: r.replayOf ?? null,
    })),
  );
  const inserted = await conn.query<{ id: string }>(
    `INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, payload, replay_of)
     SELECT (v->>'id')::uuid, (v->>'endpoint_id')::uuid, v->>'event_id', v->>'event_type', v->'payload',
            (v->>'replay_of')::uuid
       FROM jsonb_array_elements($1::jsonb) AS v
     ON CONFLICT (endpoint_id, event_id) WHERE replay_of IS NULL DO NOTHING
     RETURNING id`,
    [json],
  );
  return inserted.length;
}

/** One delivery per enabled endpoint subscribed to `type`. */
export async function enqueueEvent(db: Database, eventId: string, payload: WebhookPayload): Promise<number> {
  const endpoints = await db.query<{ id: string }>(
    `SELECT id FROM webhook_endpoints WHERE enabled AND $1 = ANY(events)`,
    [payload.type],
  );
  return insertDeliveries(
    db,
    endpoints.map((e) => ({ endpointId: e.id, eventId, payload })),
  );
}

interface StateEventRow {
  seq: string;
  task_id: string;
  from_state: string | null;
  to_state: string;
  actor: string;
  data: Record<string, unknown> | null;
  created_at: Date;
  title: string;
  priority: string;
}

const reasonOf = (data: Record<string, unknown> | null): string | null => {
  for (const key of ["reason", "error", "message", "rationale"]) {
    const v = data?.[key];
    if (typeof v === "string" && v) return v.slice(0, 2000);
    if (v && typeof v === "object" && typeof (v as { message?: unknown }).message === "string") {
      return String((v as { message: string }).message).slice(0, 2000);
    }
  }
  return null;
};

/**
 * Turns the task state changes after the cursor into deliveries and moves the cursor, in one
 * transaction: an event becomes a delivery exactly once per endpoint, across restarts. The event log
 * commits in `seq` order (events/append.ts), so every event up to the largest seq seen has committed
 * and the cursor never skips one. Another process holding the cursor is doing the same: skipped.
 * Returns how many deliveries were made, or null when the cursor was busy.
 */
export function fanOutTaskEvents(db: Database, publicUrl: string | undefined): Promise<number | null> {
  return db.transaction(async (tx) => {
    const [cursor] = await tx.query<{ last_seq: string }>(
      `SELECT last_seq::text FROM webhook_cursors WHERE name = $1 FOR UPDATE SKIP LOCKED`,
      [TASK_CURSOR],
    );
    if (!cursor) {
      // A database made before the cursor row existed gets it at the log's end; a busy cursor is skipped.
      await tx.query(
        `INSERT INTO webhook_cursors (name, last_seq) SELECT $1, COALESCE(max(seq), 0) FROM task_events
         ON CONFLICT (name) DO NOTHING`,
        [TASK_CURSOR],
      );
      return null;
    }
    const [end] = await tx.query<{ seq: string | null }>(`SELECT max(seq)::text AS seq FROM task_events`);
    const upTo = end?.seq ?? "0";
    if (BigInt(upTo) <= BigInt(cursor.last_seq)) return 0;
    const endpoints = await tx.query<{ id: string; events: string[] }>(
      `SELECT id, events FROM webhook_endpoints WHERE enabled`,
    );
    const wanted = new Set(endpoints.flatMap((e) => e.events));
    const states = Object.entries(TASK_STATE_EVENTS)
      .filter(([, type]) => wanted.has(type))
      .map(([state]) => state);
    let moveTo = upTo;
    const deliveries: NewDelivery[] = [];
    if (states.length) {
      const rows = await tx.query<StateEventRow>(
        `SELECT e.seq::text AS seq, e.task_id, e.from_state::text AS from_state, e.to_state::text AS to_state,
                e.actor, e.data, e.created_at, t.title, t.priority::text AS priority
           FROM task_events e JOIN tasks t ON t.id = e.task_id
          WHERE e.seq > $1::bigint AND e.seq <= $2::bigint AND e.type = 'state_changed'
            AND e.to_state::text = ANY($3::text[])
          ORDER BY e.seq LIMIT $4`,
        [cursor.last_seq, upTo, states, FANOUT_BATCH],
      );
      if (rows.length === FANOUT_BATCH) moveTo = (rows[rows.length - 1] as StateEventRow).seq;
      for (const r of rows) {
        const type = TASK_STATE_EVENTS[r.to_state] as WebhookEventType;
        const facts: TaskEventFacts = {
          seq: r.seq,
          taskId: r.task_id,
          title: r.title,
          state: r.to_state,
          previousState: r.from_state,
          priority: r.priority,
          actor: r.actor,
          reason: reasonOf(r.data),
          at: new Date(r.created_at),
        };
        const payload = taskPayload(type, facts, publicUrl);
        for (const e of endpoints) {
          if (e.events.includes(type)) deliveries.push({ endpointId: e.id, eventId: `task_event_${r.seq}`, payload });
        }
      }
    }
    const made = await insertDeliveries(tx, deliveries);
    await tx.query(`UPDATE webhook_cursors SET last_seq = $2::bigint, updated_at = now() WHERE name = $1`, [
      TASK_CURSOR,
      moveTo,
    ]);
    return made;
  });
}

export interface ClaimedDelivery {
  id: string;
  endpointId: string;
  eventId: string;
  payload: WebhookPayload;
  attempts: number;
  url: string;
  format: string;
  secret: string;
}

/**
 * Claims due deliveries of enabled endpoints under this process's lease, skipping rows another process
 * holds: pending ones whose time has come, and ones whose holder's lease expired (it died mid-send).
 */
export async function claimDue(
  db: Database,
  owner: string,
  leaseMs: number,
  limit: number,
): Promise<ClaimedDelivery[]> {
  const rows = await db.query<{
    id: string;
    endpoint_id: string;
    event_id: string;
    payload: WebhookPayload;
    attempts: number;
    url: string;
    format: string;
    secret: string;
  }>(
    `WITH due AS (
       SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled
        WHERE (d.status = 'pending' AND d.next_attempt_at <= now())
           OR (d.status = 'delivering' AND d.lease_expires_at < now())
        ORDER BY d.next_attempt_at
        LIMIT $3
        FOR UPDATE OF d SKIP LOCKED
     ), claimed AS (
       UPDATE webhook_deliveries d
          SET status = 'delivering', attempts = d.attempts + 1, lease_owner = $1,
              lease_expires_at = now() + make_interval(secs => $2::int / 1000.0), updated_at = now()
         FROM due WHERE d.id = due.id
       RETURNING d.id, d.endpoint_id, d.event_id, d.payload, d.attempts
     )
     SELECT c.id, c.endpoint_id, c.event_id, c.payload, c.attempts, e.url, e.format, e.secret
       FROM claimed c JOIN webhook_endpoints e ON e.id = c.endpoint_id`,
    [owner, leaseMs, limit],
  );
  return rows.map((r) => ({
    id: r.id,
    endpointId: r.endpoint_id,
    eventId: r.event_id,
    payload: r.payload,
    attempts: Number(r.attempts),
    url: r.url,
    format: r.format,
    secret: r.secret,
  }));
}

export interface TryRecord {
  responseStatus: number | null;
  responseBody: string | null;
  error: string | null;
  durationMs: number;
}

/** The try's outcome, fenced on this process still holding the row. */
export async function recordTry(
  db: Database,
  id: string,
  owner: string,
  t: TryRecord,
  next: { status: "delivered" } | { status: "failed" } | { status: "pending"; delayMs: number },
): Promise<boolean> {
  const rows = await db.query<{ id: string }>(
    `UPDATE webhook_deliveries
        SET status = $3::text, response_status = $4, response_body = $5, error = $6, duration_ms = $7,
            delivered_at = CASE WHEN $3::text = 'delivered' THEN now() ELSE delivered_at END,
            next_attempt_at = CASE WHEN $3::text = 'pending' THEN now() + make_interval(secs => $8::bigint / 1000.0)
                                   ELSE next_attempt_at END,
            lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
      WHERE id = $1::uuid AND lease_owner = $2 AND status = 'delivering'
      RETURNING id`,
    [
      id,
      owner,
      next.status,
      t.responseStatus,
      t.responseBody,
      t.error,
      t.durationMs,
      next.status === "pending" ? next.delayMs : 0,
    ],
  );
  return rows.length > 0;
}

/** A try this process gave up on while stopping: back to the queue at once, for whoever starts next. */
export async function releaseClaim(db: Database, id: string, owner: string): Promise<void> {
  await db.query(
    `UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now(), lease_owner = NULL,
            lease_expires_at = NULL, updated_at = now()
      WHERE id = $1::uuid AND lease_owner = $2 AND status = 'delivering'`,
    [id, owner],
  );
}

/** 410 Gone: the receiver says the endpoint is no more; it stays off until an admin enables it. */
export async function disableEndpoint(db: Database, endpointId: string, reason: string): Promise<void> {
  await db.query(
    `UPDATE webhook_endpoints SET enabled = false, disabled_reason = $2, updated_at = now() WHERE id = $1::uuid`,
    [endpointId, reason.slice(0, 500)],
  );
}

import type { TaskEventType } from "../../shared/task-events.js";
import type { Tx } from "../db/database.js";
import type { Prisma, TaskEvent } from "../db/generated/client.js";

/** One lock for the whole event log: events commit in the order their `seq` was drawn. */
export const EVENT_LOG_LOCK_KEY = 72_707_370;

export interface NewTaskEvent {
  taskId: string;
  /** One of the vocabulary in src/shared/task-events.ts: the console and the `kinds` filters know no other. */
  type: TaskEventType;
  fromState?: TaskEvent["fromState"];
  toState?: TaskEvent["toState"];
  actor: string;
  data?: Prisma.InputJsonValue;
}

/** Task events as their rows store them (what provenance records bind by digest). */
export function eventRows(events: NewTaskEvent[]) {
  return events.map((e) => ({
    task_id: e.taskId,
    type: e.type,
    from_state: e.fromState ?? null,
    to_state: e.toState ?? null,
    actor: e.actor,
    data: e.data ?? {},
  }));
}

/**
 * The one INSERT of task events, in array order, from the JSON array of `eventRows` in `param`,
 * after taking the event log's lock: the lock is held until commit, which keeps commit order equal
 * to `seq` order, so it must come last in a transaction. `after`: a CTE the lock must wait for (the
 * provenance insert of a unit of work).
 */
export function eventInsertSql(param: string, after?: string): string {
  return `INSERT INTO task_events (task_id, type, from_state, to_state, actor, data)
     SELECT (e.v->>'task_id')::uuid, e.v->>'type', (e.v->>'from_state')::"TaskState",
            (e.v->>'to_state')::"TaskState", e.v->>'actor', e.v->'data'
       FROM (SELECT pg_advisory_xact_lock(${EVENT_LOG_LOCK_KEY}::bigint)
               ${after ? `FROM (SELECT count(*) FROM ${after}) c` : ""}) AS lock,
            jsonb_array_elements(${param}::jsonb) WITH ORDINALITY AS e(v, n)
      ORDER BY e.n`;
}

/** Appends events inside the caller's transaction (last in it: see `eventInsertSql`). */
export async function appendTaskEvents(tx: Tx, events: NewTaskEvent[]): Promise<void> {
  if (events.length) await tx.$executeRawUnsafe(eventInsertSql("$1"), JSON.stringify(eventRows(events)));
}

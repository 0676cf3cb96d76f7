import type { TaskEventDto, TaskEventType } from "../../shared/task-events.js";
import type { TaskState } from "../../shared/task-state.js";
import type { Database } from "../db/database.js";
import type { TaskEvent } from "../db/generated/client.js";

export function toEventDto(e: TaskEvent): TaskEventDto {
  return {
    seq: e.seq.toString(),
    taskId: e.taskId,
    type: e.type as TaskEventType,
    fromState: e.fromState as TaskState | null,
    toState: e.toState as TaskState | null,
    actor: e.actor,
    data: (e.data ?? {}) as Record<string, unknown>,
    createdAt: e.createdAt,
  };
}

/** Which events: one task's (or every task's), of some kinds (or every kind). */
export interface TaskEventFilter {
  taskId?: string;
  kinds?: readonly TaskEventType[];
  /** Only events of this attempt (`data.attempt`). */
  attempt?: number;
  /** Only events whose line, message or error contains this text, case-insensitive. */
  search?: string;
}

/** A LIKE pattern matching `text` anywhere, its wildcards taken literally. */
const containsPattern = (text: string) => `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

const COLUMNS = `seq::text AS seq, task_id AS "taskId", type, from_state::text AS "fromState",
            to_state::text AS "toState", actor, data, created_at AS "createdAt"`;

/** The filter's WHERE terms, numbering its parameters after `params`' (which it extends). */
function filterSql(filter: TaskEventFilter | undefined, params: unknown[]): string {
  let sql = "";
  if (filter?.taskId) {
    params.push(filter.taskId);
    sql += ` AND task_id = $${params.length}::uuid`;
  }
  if (filter?.kinds) {
    params.push(filter.kinds);
    sql += ` AND type = ANY($${params.length}::text[])`;
  }
  if (filter?.attempt !== undefined) {
    params.push(filter.attempt);
    sql += ` AND data->'attempt' = to_jsonb($${params.length}::int)`;
  }
  if (filter?.search !== undefined) {
    params.push(containsPattern(filter.search));
    const p = `$${params.length}`;
    sql += ` AND (data->>'line' ILIKE ${p} OR data->>'message' ILIKE ${p} OR data->>'error' ILIKE ${p})`;
  }
  return sql;
}

/**
 * Up to `limit` events after `after`, in `seq` order, as DTOs: plain SQL, since the hub reads every
 * committed event once per process and the ORM's per-row work would be most of its cost.
 */
export function readEventsAfter(
  db: Database,
  after: bigint,
  limit: number,
  filter?: TaskEventFilter,
): Promise<TaskEventDto[]> {
  const params: unknown[] = [after.toString(), limit];
  return db.query<TaskEventDto>(
    `SELECT ${COLUMNS} FROM task_events
      WHERE seq > $1::bigint${filterSql(filter, params)}
      ORDER BY task_events.seq LIMIT $2::int`,
    params,
  );
}

/** The highest event `seq` committed so far (every lower one is committed too: see `appendTaskEvents`). */
export async function lastEventSeq(db: Database): Promise<bigint> {
  const [row] = await db.query<{ max: string | null }>(`SELECT max(seq)::text AS max FROM task_events`);
  return BigInt(row?.max ?? 0);
}

export interface EventPageQuery {
  taskId: string;
  kinds?: readonly TaskEventType[];
  attempt?: number;
  search?: string;
  limit: number;
  /** Read forward: the events after this seq. */
  after?: string;
  /** Read backward: the events before this seq. Neither: the newest events. */
  before?: string;
}

export interface EventPage {
  /** In `seq` order, oldest first. */
  items: TaskEventDto[];
  /** More events this way: newer ones when reading `after`, older ones otherwise. */
  hasMore: boolean;
  /**
   * Every matching event up to this seq is in this page or the ones before it (toward `after`, or older
   * for the newest page): read on from it with `after`, or subscribe with `tasks.onEvent({ lastEventId })`.
   * Null for a page read with `before`.
   */
  through: string | null;
}

/** One page of a task's events. One index range scan on (task_id, seq). */
export async function readEventPage(db: Database, q: EventPageQuery): Promise<EventPage> {
  const top = q.before === undefined ? await lastEventSeq(db) : null;
  const params: unknown[] = [q.limit + 1];
  const where = filterSql({ taskId: q.taskId, kinds: q.kinds, attempt: q.attempt, search: q.search }, params);
  let bound: string;
  let forward = false;
  if (q.after !== undefined) {
    forward = true;
    params.push(q.after, (top as bigint).toString());
    bound = `seq > $${params.length - 1}::bigint AND seq <= $${params.length}::bigint`;
  } else if (q.before !== undefined) {
    params.push(q.before);
    bound = `seq < $${params.length}::bigint`;
  } else {
    params.push((top as bigint).toString());
    bound = `seq <= $${params.length}::bigint`;
  }
  const rows = await db.query<TaskEventDto>(
    `SELECT ${COLUMNS} FROM task_events
      WHERE ${bound}${where}
      ORDER BY task_events.seq ${forward ? "ASC" : "DESC"} LIMIT $1::int`,
    params,
  );
  const hasMore = rows.length > q.limit;
  const items = rows.slice(0, q.limit);
  if (!forward) items.reverse();
  const through = top === null ? null : forward && hasMore ? (items.at(-1)?.seq ?? q.after ?? null) : top.toString();
  return { items, hasMore, through };
}

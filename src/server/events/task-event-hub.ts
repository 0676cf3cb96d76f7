import type { TaskEventDto } from "../../shared/task-events.js";
import type { TaskState } from "../../shared/task-state.js";
import type { LiveBus } from "../cluster/live-bus.js";
import type { Database } from "../db/database.js";
import type { TaskEvent } from "../db/generated/client.js";
import { TailHub } from "../lib/tail-hub.js";
import type { Logger } from "../logger.js";

export function toEventDto(e: TaskEvent): TaskEventDto {
  return {
    seq: e.seq.toString(),
    taskId: e.taskId,
    type: e.type,
    fromState: e.fromState as TaskState | null,
    toState: e.toState as TaskState | null,
    actor: e.actor,
    data: (e.data ?? {}) as Record<string, unknown>,
    createdAt: e.createdAt,
  };
}

/**
 * Up to `limit` events after `after`, in `seq` order, as DTOs: plain SQL, since the hub reads every
 * committed event once per process and the ORM's per-row work would be most of its cost.
 */
export function readEventsAfter(db: Database, after: bigint, limit: number, taskId?: string): Promise<TaskEventDto[]> {
  return db.query<TaskEventDto>(
    `SELECT seq::text AS seq, task_id AS "taskId", type, from_state::text AS "fromState",
            to_state::text AS "toState", actor, data, created_at AS "createdAt"
       FROM task_events
      WHERE seq > $1::bigint ${taskId ? "AND task_id = $3::uuid" : ""}
      ORDER BY task_events.seq LIMIT $2::int`,
    taskId ? [after.toString(), limit, taskId] : [after.toString(), limit],
  );
}

export interface SubscribeOptions {
  taskId?: string;
  /** Resume after this event; absent means "from now on". */
  lastEventId?: string | null;
  signal?: AbortSignal;
}

/**
 * Delivers committed task events, in `seq` order, to live subscribers.
 *
 * Writers take a transaction-scoped advisory lock before appending events, so events commit in
 * `seq` order. The hub tails the table (a TailHub): told that something was committed (`notify`),
 * it reads every event after the last one it delivered and hands them out. A subscriber first
 * replays from the table, then switches to the hub's stream, de-duplicating by `seq`: no gap, no
 * duplicate. Several processes: each one's hub is told of the others' commits through the LiveBus
 * (NOTIFY sent by a trigger on commit) and reads the rows itself, so all of the above holds on every process.
 */
export class TaskEventHub {
  private readonly tail: TailHub<TaskEventDto, string | undefined>;

  constructor(
    db: Database,
    log: Logger,
    /** Also look for new events on this period (for writers in other processes); 0 turns it off. */
    pollMs = 0,
  ) {
    this.tail = new TailHub<TaskEventDto, string | undefined>(
      {
        max: async () => {
          const [row] = await db.query<{ max: string | null }>(`SELECT max(seq)::text AS max FROM task_events`);
          return BigInt(row?.max ?? 0);
        },
        readAfter: (after, limit, taskId) => readEventsAfter(db, after, limit, taskId),
        positionOf: (e) => BigInt(e.seq),
        matches: (e, taskId) => !taskId || e.taskId === taskId,
      },
      log,
      "task event hub",
      pollMs,
    );
  }

  start(): Promise<void> {
    return this.tail.start();
  }

  stop(): void {
    this.tail.close();
  }

  /** Takes events committed by other processes from the bus; after a reconnection, reads what was missed. */
  follow(bus: LiveBus): void {
    this.tail.follow(bus, "task_events");
  }

  /** Events up to `seq` were committed (another process said so). */
  notifyUpTo(seq: bigint): void {
    this.tail.notifyUpTo(seq);
  }

  /** Called after a commit that appended events. Pulls are coalesced. */
  notify(): void {
    this.tail.notify();
  }

  /** Resolves once every event committed before the call has been handed to subscribers. */
  flush(): Promise<void> {
    return this.tail.flush();
  }

  get subscriberCount(): number {
    return this.tail.subscriberCount;
  }

  subscribe(opts: SubscribeOptions): AsyncGenerator<TaskEventDto> {
    return this.tail.subscribe({ filter: opts.taskId, lastEventId: opts.lastEventId, signal: opts.signal });
  }
}

import type { TaskEventDto } from "../../shared/task-events.js";
import type { TaskState } from "../../shared/task-state.js";
import type { LiveBus } from "../cluster/live-bus.js";
import type { Database } from "../db/database.js";
import type { TaskEvent } from "../db/generated/client.js";
import { BoundedQueue } from "../lib/async-queue.js";
import { shareWithSubscribers } from "../lib/shared-serialization.js";
import type { Logger } from "../logger.js";

const PAGE = 500;
/** Events a subscriber may have waiting before it is switched back to reading from the database. */
const SUBSCRIBER_BUFFER = 2_000;

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
 * `seq` order. The hub tails the table: told that something was committed (`notify`), it reads
 * every event after the last one it delivered and hands them out. A subscriber first replays from
 * the table, then switches to the hub's stream, de-duplicating by `seq`: no gap, no duplicate.
 * Several processes: each one's hub is told of the others' commits through the LiveBus (NOTIFY sent
 * by a trigger on commit) and reads the rows itself, so all of the above holds on every process.
 */
export class TaskEventHub {
  private lastSeq = 0n;
  private readonly listeners = new Set<(e: TaskEventDto) => void>();
  private pulling: Promise<void> | null = null;
  private again = false;
  /** The highest position other processes announced while a pull was running. */
  private announced = 0n;
  private timer: NodeJS.Timeout | null = null;
  private unfollow: (() => void)[] = [];

  constructor(
    private readonly db: Database,
    private readonly log: Logger,
    /** Also look for new events on this period (for writers in other processes); 0 turns it off. */
    private readonly pollMs = 0,
  ) {}

  async start(): Promise<void> {
    const max = await this.db.prisma.taskEvent.aggregate({ _max: { seq: true } });
    this.lastSeq = max._max.seq ?? 0n;
    if (this.pollMs > 0) this.timer = setInterval(() => this.notify(), this.pollMs).unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const u of this.unfollow) u();
    this.unfollow = [];
  }

  /**
   * Takes events committed by other processes from the bus; after a reconnection of the LISTEN
   * connection it reads whatever was committed meanwhile.
   */
  follow(bus: LiveBus): void {
    this.unfollow.push(
      bus.onRows("task_events", (seq) => this.notifyUpTo(seq)),
      bus.onConnect(() => this.notify()),
    );
  }

  /**
   * Events up to `seq` were committed. Already delivered (this process wrote them and pulled)
   * means nothing to read; during a pull, it is read again only if that pull stopped short of `seq`.
   */
  notifyUpTo(seq: bigint): void {
    if (seq <= this.lastSeq) return;
    if (this.pulling) {
      if (seq > this.announced) this.announced = seq;
      return;
    }
    this.notify();
  }

  get subscriberCount(): number {
    return this.listeners.size;
  }

  /** Called after a commit that appended events. Pulls are coalesced. */
  notify(): void {
    if (this.pulling) {
      this.again = true;
      return;
    }
    this.pulling = this.pull()
      .catch((err: unknown) => this.log.error({ err }, "task event hub: reading new events failed"))
      .finally(() => {
        this.pulling = null;
        if (this.again || this.announced > this.lastSeq) {
          this.again = false;
          this.notify();
        }
      });
  }

  /** Resolves once every event committed before the call has been handed to subscribers. */
  async flush(): Promise<void> {
    this.notify();
    while (this.pulling) await this.pulling;
  }

  private async pull(): Promise<void> {
    for (;;) {
      const rows = await readEventsAfter(this.db, this.lastSeq, PAGE);
      for (const e of rows) {
        this.lastSeq = BigInt(e.seq);
        // Every subscriber gets this very object: serialized once for all of them.
        shareWithSubscribers(e);
        for (const l of this.listeners) l(e);
      }
      if (rows.length < PAGE) return;
    }
  }

  private async *readAfter(after: bigint, taskId?: string): AsyncGenerator<TaskEventDto> {
    let cursor = after;
    for (;;) {
      const rows = await readEventsAfter(this.db, cursor, PAGE, taskId);
      for (const e of rows) {
        cursor = BigInt(e.seq);
        yield e;
      }
      if (rows.length < PAGE) return;
    }
  }

  async *subscribe(opts: SubscribeOptions): AsyncGenerator<TaskEventDto> {
    const queue = new BoundedQueue<TaskEventDto>(SUBSCRIBER_BUFFER);
    const listener = (e: TaskEventDto) => {
      if (!opts.taskId || e.taskId === opts.taskId) queue.push(e);
    };
    this.listeners.add(listener);
    try {
      let cursor = opts.lastEventId != null ? BigInt(opts.lastEventId) : this.lastSeq;
      let replay = opts.lastEventId != null;
      while (!opts.signal?.aborted) {
        if (replay) {
          replay = false;
          for await (const e of this.readAfter(cursor, opts.taskId)) {
            cursor = BigInt(e.seq);
            yield e;
          }
        }
        const batch = await queue.drain(opts.signal);
        if (queue.overflowed) {
          queue.overflowed = false;
          replay = true;
          continue;
        }
        for (const e of batch) {
          const seq = BigInt(e.seq);
          if (seq <= cursor) continue;
          cursor = seq;
          yield e;
        }
      }
    } finally {
      this.listeners.delete(listener);
    }
  }
}

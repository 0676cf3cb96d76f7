import type { LiveBus, RowsKind } from "../cluster/live-bus.js";
import type { Logger } from "../logger.js";
import { BoundedQueue } from "./async-queue.js";
import { shareWithSubscribers } from "./shared-serialization.js";

/** Where a hub reads from: rows with a strictly increasing position that commit in position order. */
export interface TailSource<T, F> {
  /** The kind under which the LiveBus announces this table's commits (see `follow`). */
  busKind?: RowsKind;
  /** The highest position committed so far. */
  max(): Promise<bigint>;
  /** Up to `limit` rows after `after`, in position order; with `filter`, only those it `matches`. */
  readAfter(after: bigint, limit: number, filter?: F): Promise<T[]>;
  positionOf(row: T): bigint;
  matches(row: T, filter: F): boolean;
}

const PAGE = 500;
/** After a failed read, how long before reading again. */
const RETRY_MS = 1_000;

/**
 * The one live-delivery mechanism (task events, chat messages), for any table that is tailed by a position
 * drawn under a lock (so commit order is position order): told that something committed (`notify`, or the
 * LiveBus for other processes' commits), it reads what follows the last position it delivered, once for all
 * subscribers, and hands each row to those whose filter it matches. A subscriber replays from the table
 * from `lastEventId`, then takes the live stream, skipping what it has already seen: no gap, no duplicate.
 * If it falls more than `buffer` rows behind, its queue is dropped and it re-reads from the table: memory
 * stays bounded.
 */
export class TailHub<T, F> {
  private last = 0n;
  private readonly listeners = new Set<(row: T) => void>();
  private pulling: Promise<void> | null = null;
  private again = false;
  /** The highest position other processes announced while a pull was running. */
  private announced = 0n;
  private timer: NodeJS.Timeout | null = null;
  private retry: NodeJS.Timeout | null = null;
  private started: Promise<void> | null = null;
  private unfollow: (() => void)[] = [];

  constructor(
    private readonly source: TailSource<T, F>,
    private readonly log: Logger,
    private readonly name: string,
    /** Also look for rows on this period while anyone listens (writers in other processes); 0: never. */
    private readonly pollMs = 0,
    private readonly buffer = 2_000,
  ) {}

  /** Reads where the table ends; called on first use. */
  start(): Promise<void> {
    this.started ??= this.source.max().then((m) => {
      this.last = m;
    });
    return this.started;
  }

  private stopTimers(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
  }

  /**
   * Takes rows committed by other processes from the bus (announced under `kind`, by default the source's),
   * and reads what was missed after a reconnection.
   */
  follow(bus: LiveBus, kind: RowsKind | undefined = this.source.busKind): void {
    if (!kind) throw new Error(`${this.name}: follow() needs the LiveBus kind its rows are announced under`);
    this.unfollow.push(
      bus.onRows(kind, (position) => this.notifyUpTo(position)),
      bus.onConnect(() => this.notify()),
    );
  }

  /** Stops polling and following the bus (on shutdown). Subscribers still open end with their signal. */
  stop(): void {
    this.stopTimers();
    for (const u of this.unfollow) u();
    this.unfollow = [];
  }

  /** Rows up to `position` were committed: read them unless they were delivered already or a running pull covers them. */
  notifyUpTo(position: bigint): void {
    if (!this.started || position <= this.last) return;
    if (this.pulling) {
      if (position > this.announced) this.announced = position;
      return;
    }
    this.notify();
  }

  get subscriberCount(): number {
    return this.listeners.size;
  }

  /** Called after a commit that wrote rows. Pulls are coalesced. */
  notify(): void {
    if (!this.started) return;
    if (this.pulling) {
      this.again = true;
      return;
    }
    this.pulling = this.pull().then(
      () => this.pulled(true),
      (err: unknown) => {
        this.log.error({ err }, `${this.name}: reading new rows failed`);
        this.pulled(false);
      },
    );
  }

  /**
   * After a pull: pull again at once for what was committed meanwhile. After a failed pull, pull again
   * after a pause (the rows it was told of are still unread): a read that fails at once, the database
   * gone, must not become a loop that never yields to the event loop.
   */
  private pulled(ok: boolean): void {
    this.pulling = null;
    if (!ok) {
      this.again = false;
      this.retry ??= setTimeout(() => {
        this.retry = null;
        this.notify();
      }, RETRY_MS).unref();
    } else if (this.again || this.announced > this.last) {
      this.again = false;
      this.notify();
    }
  }

  /** Resolves once every row committed before the call has been handed to subscribers. */
  async flush(): Promise<void> {
    await this.start();
    this.notify();
    while (this.pulling) await this.pulling;
  }

  private async pull(): Promise<void> {
    await this.started;
    for (;;) {
      const rows = await this.source.readAfter(this.last, PAGE);
      for (const row of rows) {
        this.last = this.source.positionOf(row);
        // Every subscriber gets this very object: serialized once for all of them.
        if (typeof row === "object" && row !== null) shareWithSubscribers(row);
        for (const l of this.listeners) l(row);
      }
      if (rows.length < PAGE) return;
    }
  }

  private async *readAfter(after: bigint, filter: F | undefined): AsyncGenerator<T> {
    let cursor = after;
    for (;;) {
      const rows = await this.source.readAfter(cursor, PAGE, filter);
      for (const row of rows) {
        cursor = this.source.positionOf(row);
        yield row;
      }
      if (rows.length < PAGE) return;
    }
  }

  /** Rows matching `filter` (all rows without one) after `lastEventId` (absent: from now on), then live. */
  async *subscribe(opts: { filter?: F; lastEventId?: string | null; signal?: AbortSignal }): AsyncGenerator<T> {
    await this.start();
    const queue = new BoundedQueue<T>(this.buffer);
    const { filter } = opts;
    const listener =
      filter === undefined
        ? (row: T) => queue.push(row)
        : (row: T) => {
            if (this.source.matches(row, filter)) queue.push(row);
          };
    this.listeners.add(listener);
    if (this.pollMs > 0 && !this.timer) this.timer = setInterval(() => this.notify(), this.pollMs).unref();
    try {
      let cursor = opts.lastEventId != null ? BigInt(opts.lastEventId) : this.last;
      let replay = opts.lastEventId != null;
      while (!opts.signal?.aborted) {
        if (replay) {
          replay = false;
          for await (const row of this.readAfter(cursor, opts.filter)) {
            cursor = this.source.positionOf(row);
            yield row;
          }
        }
        const batch = await queue.drain(opts.signal);
        if (queue.overflowed) {
          queue.overflowed = false;
          replay = true;
          continue;
        }
        for (const row of batch) {
          const position = this.source.positionOf(row);
          if (position <= cursor) continue;
          cursor = position;
          yield row;
        }
      }
    } finally {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.stopTimers();
    }
  }
}

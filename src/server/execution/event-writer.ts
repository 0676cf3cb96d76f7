import { type Database, txOf } from "../db/database.js";
import { appendTaskEvents, type NewTaskEvent } from "../events/append.js";
import type { TaskEventHub } from "../events/task-event-hub.js";
import type { Logger } from "../logger.js";

/** Worker log lines and progress held while the database is unreachable, at most (the oldest go first). */
const MAX_HELD_EVENTS = 50_000;
const RETRY_HELD_MS = 1_000;

/**
 * Group-commits task events that arrive one by one (worker log and progress lines, retries, breaker
 * changes): one transaction per batch instead of one per line, flushed every `flushMs` so they
 * still show live.
 */
export class EventWriter {
  private pending: NewTaskEvent[] = [];
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> | null = null;

  constructor(
    private readonly db: Database,
    private readonly hub: TaskEventHub,
    private readonly log: Logger,
    private readonly flushMs = 50,
    private readonly maxBatch = 1_000,
  ) {}

  append(event: NewTaskEvent): void {
    this.pending.push(event);
    // While the database is unreachable the held events wait for the retry timer, not for each new line.
    if (this.pending.length >= this.maxBatch && this.db.availability.reachable) void this.flush();
    else if (!this.timer) this.timer = setTimeout(() => void this.flush(), this.flushMs);
  }

  /** Resolves once every event appended before the call is committed. */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    while (this.writing) await this.writing;
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.writing = this.write(batch).finally(() => {
      this.writing = null;
    });
    await this.writing;
  }

  private async write(batch: NewTaskEvent[]): Promise<void> {
    try {
      await this.db.transaction((conn) => appendTaskEvents(txOf(conn), batch));
      this.hub.notify();
    } catch (err) {
      if (this.db.availability.failed(err, Date.now(), "writing task events")) {
        // Unreachable (logged once by db.availability): kept, in order, and written once it is back.
        this.pending = [...batch, ...this.pending];
        const over = this.pending.length - MAX_HELD_EVENTS;
        if (over > 0) {
          this.pending.splice(0, over);
          this.log.warn(
            { dropped: over, held: MAX_HELD_EVENTS },
            "too many task events held while the database is unreachable: the oldest were dropped",
          );
        }
        this.timer ??= setTimeout(() => void this.flush(), RETRY_HELD_MS);
        return;
      }
      // Events of a task deleted meanwhile: logged rather than retried forever.
      this.log.error({ err, events: batch.length }, "writing task events failed");
    }
  }
}

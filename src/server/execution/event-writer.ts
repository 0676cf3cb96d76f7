import type { Database } from "../db/database.js";
import { appendTaskEvents, type NewTaskEvent } from "../events/append.js";
import type { TaskEventHub } from "../events/task-event-hub.js";
import type { Logger } from "../logger.js";

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
    if (this.pending.length >= this.maxBatch) void this.flush();
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
      await this.db.prisma.$transaction((tx) => appendTaskEvents(tx, batch));
      this.hub.notify();
    } catch (err) {
      // Events of a task deleted meanwhile, or a lost connection: log them rather than retry forever.
      this.log.error({ err, events: batch.length }, "writing task events failed");
    }
  }
}

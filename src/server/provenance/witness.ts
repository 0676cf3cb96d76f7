import { mkdir, open } from "node:fs/promises";
import path from "node:path";
import { request } from "undici";
import { backoffDelayMs } from "../execution/backoff.js";
import type { Logger } from "../logger.js";

/**
 * Appends every committed checkpoint to a file (meant for another volume or host mount), opened with
 * O_APPEND and fsync'd. Checkpoints that arrive while a write is in flight go out together in the next
 * write, so the rate of fsyncs is bounded by the disk, never by the rate of batches, and no task waits.
 */
export class WitnessFile {
  private pending: string[] = [];
  private writing: Promise<void> | null = null;

  constructor(
    readonly file: string,
    private readonly log: Logger,
  ) {}

  push(note: string): void {
    this.pending.push(note);
    this.writing ??= this.drain();
  }

  /** Resolves once every checkpoint pushed so far is on disk (or its failure logged). */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending.length) {
        const batch = this.pending.join("\n");
        const count = this.pending.length;
        this.pending = [];
        try {
          await mkdir(path.dirname(this.file), { recursive: true });
          const fh = await open(this.file, "a", 0o644);
          try {
            await fh.appendFile(`${batch}\n`);
            await fh.sync();
          } finally {
            await fh.close();
          }
        } catch (err) {
          this.log.error(
            { file: this.file, checkpoints: count, code: (err as NodeJS.ErrnoException).code },
            "provenance witness file: checkpoints could not be appended",
          );
        }
      }
    } finally {
      this.writing = null;
    }
  }
}

export interface WitnessWebhookOptions {
  url: string;
  attempts?: number;
  baseDelayMs?: number;
  timeoutMs?: number;
}

/**
 * POSTs checkpoints (text/plain, the note as served) to a witness URL, best effort: retries with
 * exponential backoff, logs what it gives up on, never blocks task processing. Only the newest
 * checkpoint waiting is sent: each one covers the whole log before it, so a witness that missed one
 * loses nothing but granularity.
 */
export class WitnessWebhook {
  private latest: string | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private readonly attempts: number;
  private readonly baseDelayMs: number;
  private readonly timeoutMs: number;

  constructor(
    private readonly opts: WitnessWebhookOptions,
    private readonly log: Logger,
  ) {
    this.attempts = opts.attempts ?? 5;
    this.baseDelayMs = opts.baseDelayMs ?? 500;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  push(note: string): void {
    if (this.stopped) return;
    this.latest = note;
    this.running ??= this.run();
  }

  async flush(): Promise<void> {
    while (this.running) await this.running;
  }

  stop(): void {
    this.stopped = true;
    this.latest = null;
  }

  private async run(): Promise<void> {
    try {
      while (this.latest && !this.stopped) {
        const note = this.latest;
        this.latest = null;
        await this.send(note);
      }
    } finally {
      this.running = null;
    }
  }

  private async send(note: string): Promise<void> {
    let lastError = "";
    for (let attempt = 1; attempt <= this.attempts && !this.stopped; attempt++) {
      try {
        const res = await request(this.opts.url, {
          method: "POST",
          headers: { "content-type": "text/plain; charset=utf-8" },
          body: note,
          headersTimeout: this.timeoutMs,
          bodyTimeout: this.timeoutMs,
        });
        await res.body.dump();
        if (res.statusCode >= 200 && res.statusCode < 300) return;
        lastError = `HTTP ${res.statusCode}`;
      } catch (err) {
        lastError = (err as Error).message;
      }
      // A newer checkpoint supersedes this one: send that instead of retrying.
      if (this.latest) return;
      const delay = backoffDelayMs(attempt, { baseMs: this.baseDelayMs, maxMs: 30_000 });
      if (attempt < this.attempts) await new Promise((r) => setTimeout(r, delay));
    }
    this.log.warn({ url: this.opts.url, error: lastError }, "provenance witness webhook: checkpoint not delivered");
  }
}

import { Worker } from "node:worker_threads";
import type { Judgement } from "../../shared/verdict.js";
import type { AttemptToJudge } from "./judge.js";
import type { JudgeReply, JudgeRequest } from "./judge-worker.js";

/** A judgement that ran past the pool's time limit; its thread was terminated. */
export class JudgeTimeoutError extends Error {
  constructor(readonly limitMs: number) {
    super(`Judging took longer than ${limitMs} ms and was stopped.`);
    this.name = "JudgeTimeoutError";
  }
}

export interface JudgePoolOptions {
  /** Threads at most; each is started on first need and reused. */
  size: number;
  /** Longest one judgement may run on its thread (waiting in the queue does not count). */
  timeoutMs: number;
}

interface Job {
  id: number;
  attempt: AttemptToJudge;
  resolve: (j: Judgement) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  ready: boolean;
  job: Job | null;
  timer: NodeJS.Timeout | null;
}

/**
 * Old-space cap of one judging thread. The attempt it holds is bounded by the worker-answer caps; this
 * keeps a pathological one from growing the server's heap without end (the thread dies, the job fails).
 */
const THREAD_HEAP_MB = 1024;

/** Characters of artifact text per message: copying one takes a few milliseconds of the event loop. */
const PIECE_CHARS = 256 * 1024;

const ENTRY = new URL(`./judge-worker${import.meta.url.endsWith(".ts") ? ".ts" : ".js"}`, import.meta.url);
const THREAD = new URL("./judge-thread.mjs", import.meta.url);

/**
 * A small, bounded pool of worker threads that run the council off the event loop. Jobs queue in
 * order; a thread that runs one past `timeoutMs` is terminated (the only way to stop synchronous
 * work) and replaced on the next need, so one bad attempt cannot stall judging for the others.
 * Idle threads are unref'd: the pool never keeps a process alive on its own.
 */
export class JudgePool {
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private nextId = 1;
  private closed = false;

  constructor(private readonly options: JudgePoolOptions) {
    if (!Number.isInteger(options.size) || options.size < 1) throw new Error("A judge pool needs at least one thread.");
  }

  /** Threads running now (for tests and diagnostics). */
  get threads(): number {
    return this.slots.length;
  }

  judge(attempt: AttemptToJudge): Promise<Judgement> {
    if (this.closed) return Promise.reject(new Error("The council's judge pool is closed."));
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, attempt, resolve, reject });
      this.pump();
    });
  }

  /**
   * Takes no new jobs; the ones queued and running finish (within their time limit), then every
   * thread ends. Resolves once they have.
   */
  async close(): Promise<void> {
    this.closed = true;
    this.pump();
    while (this.slots.length || this.queue.length) await new Promise((r) => setTimeout(r, 10));
  }

  private pump(): void {
    if (this.closed && !this.queue.length) {
      for (const idle of this.slots.filter((s) => !s.job)) void this.retire(idle, new Error("closed"));
      return;
    }
    while (this.queue.length) {
      const idle = this.slots.find((s) => s.ready && !s.job);
      if (idle) {
        this.dispatch(idle, this.queue.shift() as Job);
        continue;
      }
      const starting = this.slots.some((s) => !s.ready);
      if (!starting && this.slots.length < this.options.size) {
        this.spawn();
        continue;
      }
      return;
    }
  }

  private spawn(): void {
    const worker = new Worker(THREAD, {
      workerData: { entry: ENTRY.href },
      resourceLimits: { maxOldGenerationSizeMb: THREAD_HEAP_MB },
    });
    const slot: Slot = { worker, ready: false, job: null, timer: null };
    this.slots.push(slot);
    worker.unref();
    worker.on("message", (msg: JudgeReply) => this.onMessage(slot, msg));
    worker.on("error", (err) => this.onFailure(slot, err));
    worker.on("exit", (code) => {
      if (this.slots.includes(slot)) this.onFailure(slot, new Error(`the judging thread exited with code ${code}`));
    });
  }

  private dispatch(slot: Slot, job: Job): void {
    slot.job = job;
    slot.worker.ref();
    void this.send(slot, job);
  }

  /** Posts the attempt in bounded pieces (see JudgeRequest), then starts the job's clock. */
  private async send(slot: Slot, job: Job): Promise<void> {
    const post = (msg: JudgeRequest) => slot.worker.postMessage(msg);
    const texts: Array<{ artifact: number; field: "content" | "diff"; text: string }> = [];
    const artifacts = job.attempt.result.artifacts.map((a, artifact) => {
      const { content, diff, ...rest } = a;
      if (content !== undefined) texts.push({ artifact, field: "content", text: content });
      if (diff !== undefined) texts.push({ artifact, field: "diff", text: diff });
      return {
        ...rest,
        ...(content === undefined ? {} : { content: "" }),
        ...(diff === undefined ? {} : { diff: "" }),
      };
    });
    post({ kind: "begin", id: job.id, attempt: { ...job.attempt, result: { ...job.attempt.result, artifacts } } });
    for (const { artifact, field, text } of texts) {
      for (let at = 0; at < text.length; at += PIECE_CHARS) {
        // The thread died or timed out meanwhile: its replacement starts over with the next job.
        if (slot.job !== job) return;
        post({ kind: "piece", id: job.id, artifact, field, text: text.slice(at, at + PIECE_CHARS) });
        await new Promise((r) => setImmediate(r));
      }
    }
    if (slot.job !== job) return;
    post({ kind: "judge", id: job.id });
    slot.timer = setTimeout(() => {
      void this.retire(slot, new JudgeTimeoutError(this.options.timeoutMs)).then(() => this.pump());
    }, this.options.timeoutMs);
  }

  private onMessage(slot: Slot, msg: JudgeReply): void {
    if (msg.kind === "ready") {
      slot.ready = true;
      this.pump();
      return;
    }
    const job = slot.job;
    if (!job || job.id !== msg.id) return;
    this.release(slot);
    if (msg.kind === "judged") job.resolve(msg.judgement);
    else job.reject(new Error(msg.message));
    this.pump();
  }

  /** The thread died (an uncaught error, out of memory, a failed start): its job fails, the thread is replaced on need. */
  private onFailure(slot: Slot, err: Error): void {
    if (!this.slots.includes(slot)) return;
    const why = new Error(`The council's judging thread failed: ${err.message}`);
    const wasReady = slot.ready;
    void this.retire(slot, why);
    // A thread that cannot even start will not start for the jobs behind it either: fail them now rather than hang.
    if (!wasReady) for (const job of this.queue.splice(0)) job.reject(why);
    this.pump();
  }

  private release(slot: Slot): void {
    if (slot.timer) clearTimeout(slot.timer);
    slot.timer = null;
    slot.job = null;
    slot.worker.unref();
  }

  private async retire(slot: Slot, why: Error): Promise<void> {
    const index = this.slots.indexOf(slot);
    if (index === -1) return;
    this.slots.splice(index, 1);
    const job = slot.job;
    this.release(slot);
    job?.reject(why);
    await slot.worker.terminate();
  }
}

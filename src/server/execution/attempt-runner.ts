import type { TaskSpec } from "../../shared/task-spec.js";
import type { TaskState } from "../../shared/task-state.js";
import { PROTOCOL_VERSION } from "../../shared/worker-protocol.js";
import type { TierPolicy } from "../config.js";
import { judgeAttempt } from "../council/council.js";
import type { Database } from "../db/database.js";
import { newErrorId } from "../lib/public-errors.js";
import type { Logger } from "../logger.js";
import { type AttemptOutcome, AttemptTrace } from "../telemetry/tracing.js";
import type { WorkerService } from "../workers/service.js";
import { toTarget } from "../workers/service.js";
import type { ClaimedAttempt, ClaimWorker } from "./claim.js";
import { WorkerCallError } from "./errors.js";
import type { EventWriter } from "./event-writer.js";
import type { AttemptEnd, Finisher } from "./finisher.js";
import * as sql from "./statements.js";
import type { WorkerClient } from "./worker-client.js";

/**
 * Results held in memory while the database is unreachable, stored once it is back. Past either
 * bound a result is not kept: its lease is left to expire and recovery fetches it again from the
 * worker by its Idempotency-Key.
 */
export const HELD_RESULTS_MAX = 1_000;
export const HELD_RESULT_BYTES_MAX = 256 * 1024 * 1024;

export interface Running {
  attemptId: string;
  taskId: string;
  number: number;
  workerId: string;
  ctrl: AbortController;
  done: Promise<void>;
}

/**
 * Abort reasons that end a run without the run writing its end: someone else finishes the attempt
 * (a cancel, a process that recovered it), or it is handed back at shutdown for the next process.
 */
export class Handover extends WorkerCallError {
  constructor(
    message: string,
    readonly handBack = false,
  ) {
    super("canceled", message, { retryable: false, countsAgainstWorker: false });
  }
}

export const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });

/**
 * Whether a failed try may have left work running at the worker: the agency stopped waiting (a timeout,
 * the deadline) or lost the connection, or failed itself mid-call. Not when the worker answered (an HTTP
 * error, a malformed result, an answer over a cap: its work is over) or was never called (an open
 * breaker, a refused URL).
 */
const mayHaveRun = (err: WorkerCallError) =>
  err.kind === "timeout" || err.kind === "deadline" || err.kind === "network" || err.kind === "internal";

/** An end as its spans tell it. */
const outcomeOf = (end: AttemptEnd): AttemptOutcome =>
  end.kind === "completed"
    ? { outcome: "completed", tries: end.tries, verdict: end.judgement?.verdict ?? null, error: end.councilError }
    : { outcome: "failed", tries: end.tries, error: end.error };

export interface RunnerSettings {
  leaseMs: number;
  policyFor(riskTier: number): TierPolicy;
}

/**
 * Runs attempts on their workers, in this process: one call per attempt (with its tries), the
 * council's verdict, the end stored through the finisher (held while the database is unreachable),
 * each attempt's lease renewed while it runs here, and at shutdown the rest handed back.
 */
export class AttemptRunner {
  private readonly running = new Map<string, Running>();
  /** Results held while the database is unreachable (count and approximate bytes). */
  private held = { count: 0, bytes: 0 };

  constructor(
    private readonly db: Database,
    private readonly log: Logger,
    private readonly owner: string,
    private readonly client: WorkerClient,
    private readonly events: EventWriter,
    private readonly workers: WorkerService,
    private readonly finisher: Finisher,
    private readonly settings: RunnerSettings,
    /** Called when a run ends (its slot is free). */
    private readonly onDone: () => void,
  ) {}

  get size(): number {
    return this.running.size;
  }

  /** The attempts running here. */
  ids(): string[] {
    return [...this.running.keys()];
  }

  workerOf(attemptId: string): string | undefined {
    return this.running.get(attemptId)?.workerId;
  }

  private policyFor(riskTier: number): TierPolicy {
    return this.settings.policyFor(riskTier);
  }

  /** Stops a run here without it writing its end (whoever aborts it does); resolves once it has stopped. */
  async takeOver(attemptId: string, reason: string): Promise<void> {
    const local = this.running.get(attemptId);
    if (!local) return;
    local.ctrl.abort(new Handover(reason));
    await local.done;
  }

  /**
   * Lets the attempts running here finish for up to `graceMs` (their leases still renewed), then
   * hands the rest back at once: their runs stop without an end, the work is left running at the
   * worker (no /cancel), and their leases are released, so the next process re-attaches to each by
   * its Idempotency-Key without waiting for a lease to expire and without counting an attempt or a
   * recovery.
   */
  async drain(graceMs: number): Promise<void> {
    const until = Date.now() + graceMs;
    if (this.running.size) {
      this.log.info(
        { running: this.running.size, graceMs },
        "letting running attempts finish before handing the rest back",
      );
    }
    while (this.running.size && Date.now() < until) {
      await Promise.race([
        Promise.allSettled([...this.running.values()].map((r) => r.done)),
        sleep(until - Date.now()),
      ]);
    }
    const handedBack: Running[] = [];
    // Until none is left: a batch of ends committing meanwhile may have launched the attempts it claimed.
    for (let runs = [...this.running.values()]; runs.length; runs = [...this.running.values()]) {
      for (const r of runs) {
        if (r.ctrl.signal.aborted) continue;
        handedBack.push(r);
        r.ctrl.abort(
          new Handover(
            "The agency process is shutting down; the attempt is handed back to the next process, which re-attaches to it.",
            true,
          ),
        );
      }
      await Promise.allSettled(runs.map((r) => r.done));
    }
    if (handedBack.length) await this.handBack(handedBack);
  }

  /** Releases the leases of attempts left running at their workers, for the next process to re-attach to at once. */
  private async handBack(runs: Running[]): Promise<void> {
    try {
      const released = await sql.releaseLeases(
        this.db,
        runs.map((r) => r.attemptId),
        this.owner,
      );
      for (const r of released) {
        this.events.append({
          taskId: r.task_id,
          type: "attempt_handed_back",
          actor: "system",
          data: {
            attempt: Number(r.number),
            reason: "The agency process is shutting down; the next one re-attaches to the running work.",
          },
        });
      }
      this.log.info(
        { handedBack: released.length, attempts: released.map((r) => r.id) },
        "running attempts handed back: the next process re-attaches to them by their Idempotency-Key",
      );
    } catch (err) {
      // Their leases expire instead; the next process re-attaches then (counted as a recovery).
      this.db.availability.failed(err, Date.now(), "handing attempts back");
      this.log.warn(
        { attempts: runs.map((r) => r.attemptId), error: (err as Error).message },
        "could not release the leases of the attempts still running; the next process re-attaches to them once the leases expire",
      );
    }
  }

  /** `startedAt`: when a re-attached attempt first started (its deadline counts from then). */
  launch(c: ClaimedAttempt, w: ClaimWorker, startedAt?: number): void {
    const ctrl = new AbortController();
    const entry: Running = {
      attemptId: c.attemptId,
      taskId: c.taskId,
      number: c.number,
      workerId: w.id,
      ctrl,
      done: Promise.resolve(),
    };
    this.running.set(c.attemptId, entry);
    const tracing = new AttemptTrace(c, w.name, startedAt !== undefined);
    entry.done = this.run(c, w, ctrl, tracing, startedAt)
      .catch((err: unknown) => this.log.error({ err, attemptId: c.attemptId }, "running an attempt failed"))
      .finally(() => {
        // A run that wrote no end: handed back at shutdown, taken over (a cancel, a lost lease), or broken.
        const reason = ctrl.signal.reason;
        tracing.finish(
          reason instanceof Handover
            ? { outcome: reason.handBack ? "handed_back" : "taken_over" }
            : { outcome: "failed", error: "The run ended without an end to store (the server's log has the error)." },
        );
        this.running.delete(c.attemptId);
        this.onDone();
      });
  }

  private async run(
    c: ClaimedAttempt,
    w: ClaimWorker,
    ctrl: AbortController,
    tracing: AttemptTrace,
    startedAt?: number,
  ): Promise<void> {
    const spec: TaskSpec = c.spec;
    const policy = this.policyFor(c.riskTier);
    const deadlineMs = spec.budget.maxDurationSec ? spec.budget.maxDurationSec * 1000 : policy.deadlineMs;
    const deadline = (startedAt ?? Date.now()) + deadlineMs;
    const actor = `worker:${w.name}`;
    /** What every end of this run names. */
    const ref = { attemptId: c.attemptId, taskId: c.taskId, number: c.number, workerName: w.name };
    let tries = 0;
    /** Whether a try reached the worker (it may be running the work). */
    let sent = false;
    let end: AttemptEnd;
    try {
      const outcome = await this.client.execute({
        worker: toTarget(w),
        request: {
          protocol: PROTOCOL_VERSION,
          taskId: c.taskId,
          attempt: c.number,
          spec,
          ...(c.critique ? { critique: c.critique } : {}),
          deadline: new Date(deadline).toISOString(),
        },
        policy,
        deadline,
        signal: ctrl.signal,
        // Each try is a span of the attempt's, and its worker is sent the try's traceparent.
        trace: tracing.context,
        onLine: (line) =>
          this.events.append({
            taskId: c.taskId,
            type: line.type,
            actor,
            data:
              line.type === "log"
                ? { attempt: c.number, stream: line.stream, line: line.line.slice(0, 10_000) }
                : { attempt: c.number, percent: line.percent ?? null, message: line.message ?? null },
          }),
        onTryFailed: (tryNumber, error, nextDelayMs) => {
          tries = tryNumber;
          if (mayHaveRun(error)) sent = true;
          this.events.append({
            taskId: c.taskId,
            type: "attempt_try_failed",
            actor: "system",
            data: {
              attempt: c.number,
              worker: w.name,
              try: tryNumber,
              of: policy.tries,
              kind: error.kind,
              status: error.status ?? null,
              error: error.message.slice(0, 2000),
              retryInMs: nextDelayMs,
            },
          });
          if (error.countsAgainstWorker) void this.workers.recordError(w.id, error.message);
        },
      });
      tries = outcome.tries;
      if (outcome.result.status === "failed") {
        end = {
          kind: "failed",
          ...ref,
          tries,
          error: `Worker ${w.name} reported failure: ${outcome.result.error?.message ?? outcome.result.summary}`,
          countsAsFailure: true,
          summary: outcome.result.summary,
          result: outcome.result,
          reportedByWorker: true,
        };
      } else {
        let judgement = null;
        let councilError: string | undefined;
        try {
          // On a judging thread: a large artifact set or a costly pattern never holds up the event loop.
          judgement = await tracing.council(() => judgeAttempt({ spec, result: outcome.result }));
        } catch (err) {
          councilError = (err as Error).message;
          this.log.error({ err, attemptId: c.attemptId }, "the council failed on an attempt");
        }
        end = {
          kind: "completed",
          ...ref,
          tries,
          result: outcome.result,
          judgement,
          ...(councilError ? { councilError } : {}),
        };
      }
    } catch (raw) {
      const reason = ctrl.signal.reason;
      // A cancel (or a lost lease) took the attempt over: it writes the attempt's end, not us.
      if (reason instanceof Handover) return;
      let err: WorkerCallError;
      if (raw instanceof WorkerCallError) err = raw;
      else {
        // Not a worker's failure but ours: the task is told our words and the id; the log has the error.
        const errorId = newErrorId();
        this.log.error({ err: raw, attemptId: c.attemptId, errorId }, "an attempt's run failed");
        err = new WorkerCallError(
          "network",
          `The agency failed while running this attempt (internal error ${errorId}).`,
          {
            retryable: false,
            countsAgainstWorker: false,
          },
        );
      }
      // The agency gives the attempt up (timeouts, a broken answer, the deadline): the worker may still be
      // running it, and the next attempt must not run beside it.
      let told = "";
      if (sent || mayHaveRun(err)) {
        const stop = await tracing.run(() =>
          this.client.cancel(toTarget(w), {
            taskId: c.taskId,
            attempt: c.number,
            reason: err.message,
          }),
        );
        told = ` Worker told to stop: ${stop.confirmed ? "confirmed" : "unconfirmed"} (${stop.detail}).`;
      }
      end = {
        kind: "failed",
        ...ref,
        tries: Math.max(tries, 1),
        error: err.message + told,
        // An open breaker is not the task's fault.
        countsAsFailure: err.kind !== "breaker_open",
      };
    }
    await tracing.end(outcomeOf(end), () => this.store(end, ctrl));
  }

  /**
   * Stores a run's end. While the database is unreachable the end is held in memory (bounded) and the
   * run's entry stays, so its lease is renewed once the database is back; storing is retried with
   * backoff until it succeeds, the attempt is taken over (fenced off), or the process hands it back.
   * Resolves to the task's state after the end, or null when it was not stored here.
   */
  private async store(end: AttemptEnd, ctrl: AbortController): Promise<TaskState | null> {
    const availability = this.db.availability;
    let bytes = 0;
    let delay = 250;
    try {
      for (;;) {
        const reason = ctrl.signal.reason;
        if (ctrl.signal.aborted && reason instanceof Handover) {
          if (bytes) {
            this.log.warn(
              { attemptId: end.attemptId, taskId: end.taskId, reason: reason.message },
              "a result held while the database was unreachable was not stored here; whoever re-attaches fetches it again from the worker",
            );
          }
          return null;
        }
        if (!availability.reachable) {
          await availability.whenReachable(delay);
          // Nothing else told us it is back: ask (the probe feeds the same state).
          if (!availability.reachable) await this.db.query("SELECT 1").catch(() => undefined);
        }
        if (availability.reachable) {
          try {
            // The attempt's log lines go into the event log before its end does.
            await this.events.flush();
            const state = await this.finisher.finish(end);
            if (state) return state;
            // Fenced off (taken over), or not stored because the database went away meanwhile: the row tells.
            if (!(await sql.holdsLease(this.db, end.attemptId, this.owner))) return null;
            if (availability.reachable) {
              // Reachable, still ours, not written: the finisher logged why. Try again after a while.
              this.log.warn({ attemptId: end.attemptId }, "an attempt's end was not stored; trying again");
            }
          } catch (err) {
            if (!availability.failed(err, Date.now(), "storing an attempt's end")) throw err;
          }
        }
        if (!bytes) {
          bytes = Math.max(1, JSON.stringify(end).length);
          if (this.held.count >= HELD_RESULTS_MAX || this.held.bytes + bytes > HELD_RESULT_BYTES_MAX) {
            this.log.error(
              {
                attemptId: end.attemptId,
                taskId: end.taskId,
                held: this.held.count,
                heldBytes: this.held.bytes,
                maxResults: HELD_RESULTS_MAX,
                maxBytes: HELD_RESULT_BYTES_MAX,
              },
              "too many results held while the database is unreachable: this one is not kept here; its lease will expire and recovery fetches it again from the worker by its Idempotency-Key",
            );
            bytes = 0;
            return null;
          }
          this.held.count++;
          this.held.bytes += bytes;
          this.log.debug(
            { attemptId: end.attemptId, held: this.held.count },
            "holding an attempt's end until the database is back",
          );
        }
        await sleep(delay, ctrl.signal);
        delay = Math.min(delay * 2, 5_000);
      }
    } finally {
      if (bytes) {
        this.held.count--;
        this.held.bytes -= bytes;
      }
    }
  }

  /**
   * Renews the leases of the attempts running here (a held result's too) in one statement; aborts runs
   * whose lease was lost. Only those: an attempt whose run ended here without storing its end lets its
   * lease expire, and recovery re-attaches to it.
   */
  async renewLeases(): Promise<void> {
    if (this.running.size === 0) return;
    const renewed = await sql.renewLeases(this.db, this.owner, this.settings.leaseMs, [...this.running.keys()]);
    const held = new Set(renewed.map((r) => r.id));
    for (const r of this.running.values()) {
      // Recovered by another process (we stalled past the lease): stop, so it never runs twice at once.
      if (!held.has(r.attemptId) && !r.ctrl.signal.aborted) {
        // Give a just-claimed attempt the benefit of the doubt only until its claim is visible.
        if (await sql.holdsLease(this.db, r.attemptId, this.owner)) continue;
        r.ctrl.abort(new Handover("This process lost the attempt's lease; another process recovered it."));
      }
    }
  }
}

import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { TaskSpec } from "../../shared/task-spec.js";
import { PROTOCOL_VERSION } from "../../shared/worker-protocol.js";
import { SYSTEM_ACTORS } from "../audit/trail.js";
import type { TierPolicy } from "../config.js";
import { judgeAttempt } from "../council/council.js";
import type { Database } from "../db/database.js";
import type { Worker } from "../db/generated/client.js";
import type { UnitOfWork, UnitOfWorkRunner } from "../db/unit-of-work.js";
import type { TaskEventHub } from "../events/task-event-hub.js";
import { newErrorId } from "../lib/public-errors.js";
import type { Logger } from "../logger.js";
import { taskCancel, taskResult } from "../tasks/decisions.js";
import { applyStateChanges, requeueOrFail, type StateChange } from "../tasks/state-changes.js";
import type { BreakerRegistry } from "../workers/breakers.js";
import { toTarget, type WorkerService } from "../workers/service.js";
import { type Claim, type ClaimedAttempt, type ClaimWorker, claimForWorker, claimRows } from "./claim.js";
import {
  type DispatchCandidate,
  type DispatchHealth,
  dispatchOrder,
  mayRefill,
  waitingReason,
} from "./dispatch-order.js";
import { WorkerCallError } from "./errors.js";
import type { EventWriter } from "./event-writer.js";
import { type AttemptEnd, Finisher } from "./finisher.js";
import type { WorkerClient } from "./worker-client.js";

export interface EngineSettings {
  leaseMs: number;
  dispatchIntervalMs: number;
  recoveryIntervalMs: number;
  healthIntervalMs: number;
  maxAutoRedispatch: number;
  retryPolicy: Record<1 | 2 | 3, TierPolicy>;
  /** How long `stop()` lets running attempts finish before handing the rest back (SHUTDOWN_GRACE_MS). */
  shutdownGraceMs: number;
  /** Re-attachments of one attempt after its process stopped, before it is marked lost (RECOVERY_LIMIT). */
  recoveryLimit: number;
}

/**
 * Results held in memory while the database is unreachable, stored once it is back. Past either
 * bound a result is not kept: its lease is left to expire and recovery fetches it again from the
 * worker by its Idempotency-Key.
 */
export const HELD_RESULTS_MAX = 1_000;
export const HELD_RESULT_BYTES_MAX = 256 * 1024 * 1024;

interface Running {
  attemptId: string;
  taskId: string;
  number: number;
  workerId: string;
  ctrl: AbortController;
  done: Promise<void>;
}

const WAITING_REASON_EVERY_MS = 250;

/** What dispatching needs of a worker. */
type DispatchWorker = Pick<Worker, "id" | "name" | "capabilities" | "maxConcurrency" | "tripped"> & DispatchCandidate;

interface DispatchWorkerRow {
  id: string;
  name: string;
  capabilities: string[] | null;
  max_concurrency: number;
  tripped: boolean;
  health: string;
  busy: number;
}

const tierOf = (riskTier: number): 1 | 2 | 3 => (riskTier === 1 || riskTier === 3 ? riskTier : 2);

/**
 * Abort reasons that end a run without the run writing its end: someone else finishes the attempt
 * (a cancel, a process that recovered it), or it is handed back at shutdown for the next process.
 */
class Handover extends WorkerCallError {
  constructor(
    message: string,
    readonly handBack = false,
  ) {
    super("canceled", message, { retryable: false, countsAgainstWorker: false });
  }
}

/** A running attempt whose lease expired, with what re-attaching to it needs. */
interface ExpiredRow {
  attempt_id: string;
  task_id: string;
  number: number;
  lease_owner: string | null;
  recoveries: number;
  started_at: Date;
  critique: ClaimedAttempt["critique"];
  task_state: string;
  spec: TaskSpec;
  risk_tier: number;
  worker_id: string | null;
  worker_name: string | null;
  url: string | null;
  token: string | null;
  capabilities: string[] | null;
}

const sleep = (ms: number, signal?: AbortSignal) =>
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
 * Runs queued tasks on workers. One per process; several processes may share a Postgres server:
 * claims use SKIP LOCKED, every running attempt holds a lease this process renews, and every
 * write that ends an attempt is fenced by that lease.
 */
export class ExecutionEngine {
  /** This process's lease identity: host, pid and a per-boot nonce, so a restarted process is a new owner. */
  readonly owner = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private readonly running = new Map<string, Running>();
  private readonly finisher: Finisher;
  private timers: NodeJS.Timeout[] = [];
  /** Lease renewal runs apart from the other timers: it goes on while `stop()` lets attempts finish. */
  private renewTimer: NodeJS.Timeout | null = null;
  /** Results held while the database is unreachable (count and approximate bytes). */
  private held = { count: 0, bytes: 0 };
  private started = false;
  private stopping = false;
  private dispatching: Promise<void> | null = null;
  private dispatchAgain = false;
  private wakeTimer: NodeJS.Timeout | null = null;
  private reasonsAt = 0;

  constructor(
    private readonly db: Database,
    private readonly hub: TaskEventHub,
    private readonly log: Logger,
    private readonly workers: WorkerService,
    private readonly breakers: BreakerRegistry,
    private readonly client: WorkerClient,
    private readonly events: EventWriter,
    private readonly settings: EngineSettings,
    private readonly units: UnitOfWorkRunner,
  ) {
    this.finisher = new Finisher(
      log,
      {
        owner: this.owner,
        maxAutoRedispatch: settings.maxAutoRedispatch,
        attemptsFor: (tier) => this.policyFor(tier).attempts,
      },
      units,
      (unit, written) => this.refill(unit, written),
    );
  }

  policyFor(riskTier: number): TierPolicy {
    return this.settings.retryPolicy[tierOf(riskTier)];
  }

  get inFlight(): number {
    return this.running.size;
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.stopping = false;
    await this.workers.restoreTrippedBreakers();
    await this.recover().catch((err: unknown) => this.failed(err, "recovering expired leases"));
    const every = (ms: number, fn: () => Promise<unknown>, what: string) => {
      this.timers.push(
        setInterval(() => {
          if (!this.stopping) fn().catch((err: unknown) => this.failed(err, what));
        }, ms).unref(),
      );
    };
    every(this.settings.dispatchIntervalMs, () => this.dispatch(), "dispatching");
    this.renewTimer = setInterval(
      () => void this.renewLeases().catch((err: unknown) => this.failed(err, "renewing leases")),
      Math.max(100, Math.floor(this.settings.leaseMs / 3)),
    ).unref();
    every(this.settings.recoveryIntervalMs, () => this.recover(), "recovering expired leases");
    every(this.settings.healthIntervalMs, () => this.workers.pollHealth(), "polling worker health");
    every(
      Math.max(50, Math.min(1000, this.settings.dispatchIntervalMs)),
      () => this.workers.probeOpenBreakers(),
      "probing breakers",
    );
    void this.workers.pollHealth().catch((err: unknown) => this.failed(err, "polling worker health"));
    this.wake();
  }

  /**
   * A periodic job failed: logged with its error, unless the database is unreachable (the outage has
   * its one line from `db.availability`, not one stack per failed poll).
   */
  private failed(err: unknown, what: string): void {
    if (this.db.availability.failed(err, Date.now(), what)) return;
    this.log.error({ err }, `${what} failed`);
  }

  /**
   * Drains: stops claiming, lets the attempts running here finish for up to `shutdownGraceMs` (their
   * leases still renewed), then hands the rest back at once: their runs stop without an end, the
   * work is left running at the worker (no /cancel), and their leases are released, so the next
   * process re-attaches to each by its Idempotency-Key without waiting for a lease to expire and
   * without counting an attempt or a recovery.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTimer = null;
    while (this.dispatching) await this.dispatching;
    const until = Date.now() + this.settings.shutdownGraceMs;
    if (this.running.size) {
      this.log.info(
        { running: this.running.size, graceMs: this.settings.shutdownGraceMs },
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
    if (this.renewTimer) clearInterval(this.renewTimer);
    this.renewTimer = null;
    if (handedBack.length) await this.handBack(handedBack);
    await this.events.flush();
    this.started = false;
  }

  /** Releases the leases of attempts left running at their workers, for the next process to re-attach to at once. */
  private async handBack(runs: Running[]): Promise<void> {
    try {
      const released = await this.db.query<{ id: string; task_id: string; number: number }>(
        `UPDATE attempts SET lease_owner = NULL, lease_expires_at = now()
          WHERE id = ANY($1::uuid[]) AND lease_owner = $2 AND state = 'running'
          RETURNING id, task_id, number`,
        [runs.map((r) => r.attemptId), this.owner],
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

  /** Looks for work soon; calls within a few milliseconds are coalesced into one pass. */
  wake(): void {
    if (!this.started || this.stopping || this.wakeTimer) return;
    this.wakeTimer = setTimeout(() => {
      this.wakeTimer = null;
      this.dispatch().catch((err: unknown) => this.log.error({ err }, "dispatching failed"));
    }, 2);
  }

  /** One dispatch pass (coalesced: a call during a pass makes it run once more). */
  dispatch(): Promise<void> {
    if (this.stopping) return Promise.resolve();
    if (this.dispatching) {
      this.dispatchAgain = true;
      return this.dispatching;
    }
    this.dispatching = (async () => {
      try {
        do {
          this.dispatchAgain = false;
          await this.dispatchPass();
        } while (this.dispatchAgain && !this.stopping);
      } finally {
        this.dispatching = null;
      }
    })();
    return this.dispatching;
  }

  private async dispatchPass(): Promise<void> {
    // One plain query per pass (it runs after every claim and every finished batch): the enabled
    // workers with their running attempts.
    const rows = await this.db.query<DispatchWorkerRow>(
      `SELECT w.id, w.name, w.capabilities, w.max_concurrency, w.tripped, w.health,
              (SELECT count(*) FROM attempts a WHERE a.worker_id = w.id AND a.state = 'running')::int AS busy
         FROM workers w WHERE w.enabled`,
    );
    const workers: DispatchWorker[] = rows.map((r) => ({
      id: r.id,
      name: r.name,
      capabilities: r.capabilities ?? [],
      maxConcurrency: Number(r.max_concurrency),
      tripped: r.tripped,
      busy: Number(r.busy),
      health: r.health as DispatchHealth,
      breaker: this.breakers.sync(r.id, r.name, r.tripped),
      errorRate: this.breakers.recent(r.id).errorRate,
    }));
    // Never to a worker that is down or whose breaker is open; by load and recent error rate (dispatch-order.ts).
    for (const { worker: w, claim: free } of dispatchOrder(workers)) {
      if (this.stopping) return;
      const got = await claimForWorker(this.units, w.id, free, this.owner, this.settings.leaseMs);
      if (got?.claimed.length) this.launchAll([got]);
    }
    // Waiting reasons change slowly; refreshing them on every wake would cost two queries per finished batch.
    if (Date.now() - this.reasonsAt >= WAITING_REASON_EVERY_MS) {
      this.reasonsAt = Date.now();
      await this.updateWaitingReasons(workers);
    }
  }

  /** Says on each queued task why it waits, when no worker could take it; clears it when one can. */
  private async updateWaitingReasons(workers: DispatchWorker[]): Promise<void> {
    // Plain SQL: this runs several times a second while tasks flow.
    const caps = await this.db.query<{ capability: string }>(
      `SELECT DISTINCT capability FROM tasks WHERE state = 'queued'`,
    );
    for (const { capability } of caps) {
      const reason = waitingReason(
        capability,
        workers.filter((w) => w.capabilities.includes(capability)),
      );
      // Only rows whose reason changes.
      await this.db.query(
        `UPDATE tasks SET waiting_reason = $2
          WHERE state = 'queued' AND capability = $1 AND waiting_reason IS DISTINCT FROM $2`,
        [capability, reason],
      );
    }
  }

  /**
   * Claims again, in the transaction that ends a batch of attempts, as many tasks as those attempts
   * freed slots on their workers: a slot is refilled in the same round trips that freed it instead
   * of waiting for a dispatch pass and a claim transaction of its own. The claims are launched once
   * the unit has committed.
   */
  private async refill(unit: UnitOfWork, written: AttemptEnd[]): Promise<void> {
    if (this.stopping || !this.started) return;
    const freed = new Map<string, number>();
    for (const end of written) {
      const workerId = this.running.get(end.attemptId)?.workerId;
      if (workerId) freed.set(workerId, (freed.get(workerId) ?? 0) + 1);
    }
    const claims: Claim[] = [];
    for (const [workerId, slots] of freed) {
      const refill = {
        tripped: false,
        breaker: this.breakers.state(workerId),
        health: this.workers.healthOf(workerId),
        errorRate: this.breakers.recent(workerId).errorRate,
      };
      if (!mayRefill(refill)) continue;
      const claim = await claimRows(unit, {
        workerId,
        limit: slots,
        owner: this.owner,
        leaseMs: this.settings.leaseMs,
        lockWorker: false,
      });
      if (claim?.claimed.length) claims.push(claim);
    }
    if (claims.length) unit.afterCommit(() => this.launchAll(claims));
  }

  private launchAll(claims: Claim[]): void {
    for (const { worker, claimed } of claims) for (const c of claimed) this.launch(c, worker);
  }

  /** `startedAt`: when a re-attached attempt first started (its deadline counts from then). */
  private launch(c: ClaimedAttempt, w: ClaimWorker, startedAt?: number): void {
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
    entry.done = this.run(c, w, ctrl, startedAt)
      .catch((err: unknown) => this.log.error({ err, attemptId: c.attemptId }, "running an attempt failed"))
      .finally(() => {
        this.running.delete(c.attemptId);
        this.wake();
      });
  }

  private async run(c: ClaimedAttempt, w: ClaimWorker, ctrl: AbortController, startedAt?: number): Promise<void> {
    const spec: TaskSpec = c.spec;
    const policy = this.policyFor(c.riskTier);
    const deadlineMs = spec.budget.maxDurationSec ? spec.budget.maxDurationSec * 1000 : policy.deadlineMs;
    const deadline = (startedAt ?? Date.now()) + deadlineMs;
    const actor = `worker:${w.name}`;
    let tries = 0;
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
          attemptId: c.attemptId,
          taskId: c.taskId,
          number: c.number,
          workerName: w.name,
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
          judgement = await judgeAttempt({ spec, result: outcome.result });
        } catch (err) {
          councilError = (err as Error).message;
          this.log.error({ err, attemptId: c.attemptId }, "the council failed on an attempt");
        }
        end = {
          kind: "completed",
          attemptId: c.attemptId,
          taskId: c.taskId,
          number: c.number,
          workerName: w.name,
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
      end = {
        kind: "failed",
        attemptId: c.attemptId,
        taskId: c.taskId,
        number: c.number,
        workerName: w.name,
        tries: Math.max(tries, 1),
        error: err.message,
        // An open breaker is not the task's fault.
        countsAsFailure: err.kind !== "breaker_open",
      };
    }
    await this.store(end, ctrl);
  }

  /**
   * Stores a run's end. While the database is unreachable the end is held in memory (bounded) and the
   * run's entry stays, so its lease is renewed once the database is back; storing is retried with
   * backoff until it succeeds, the attempt is taken over (fenced off), or the process hands it back.
   */
  private async store(end: AttemptEnd, ctrl: AbortController): Promise<void> {
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
          return;
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
            if (await this.finisher.finish(end)) return;
            // Fenced off (taken over), or not stored because the database went away meanwhile: the row tells.
            const mine = await this.db.query(
              `SELECT 1 FROM attempts WHERE id = $1::uuid AND state = 'running' AND lease_owner = $2`,
              [end.attemptId, this.owner],
            );
            if (!mine.length) return;
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
            return;
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
    const renewed = await this.db.query<{ id: string }>(
      `UPDATE attempts SET lease_expires_at = now() + make_interval(secs => $2::int / 1000.0)
        WHERE lease_owner = $1 AND state = 'running' AND id = ANY($3::uuid[]) RETURNING id`,
      [this.owner, this.settings.leaseMs, [...this.running.keys()]],
    );
    const held = new Set(renewed.map((r) => r.id));
    for (const r of this.running.values()) {
      // Recovered by another process (we stalled past the lease): stop, so it never runs twice at once.
      if (!held.has(r.attemptId) && !r.ctrl.signal.aborted) {
        // Give a just-claimed attempt the benefit of the doubt only until its claim is visible.
        const still = await this.db.prisma.attempt.findUnique({
          where: { id: r.attemptId },
          select: { state: true, leaseOwner: true },
        });
        if (still?.state === "running" && still.leaseOwner === this.owner) continue;
        r.ctrl.abort(new Handover("This process lost the attempt's lease; another process recovered it."));
      }
    }
  }

  /**
   * Finds attempts whose lease expired (their process died or stalled) or was handed back at
   * shutdown, and re-attaches to each: this process takes its lease (fenced on the expired lease, so
   * one process wins) and runs it again as the same attempt, sent to the same worker with the same
   * Idempotency-Key, which attaches to the running work or returns its stored result (a worker with
   * no record starts a new try of the same attempt). An expired lease counts one recovery; past
   * `recoveryLimit` (a crash loop), or when the worker was removed or the task is being canceled,
   * the worker is told to stop, the attempt is marked `lost`, and the task is queued again as a new
   * attempt or failed when its attempts are used up. Also finishes cancellations their process did
   * not live to finish.
   */
  async recover(): Promise<number> {
    const expired = await this.db.query<ExpiredRow>(
      `SELECT a.id AS attempt_id, a.task_id, a.number, a.lease_owner, a.recoveries, a.started_at, a.critique,
              t.state AS task_state, t.spec, t.risk_tier::int AS risk_tier,
              w.id AS worker_id, w.name AS worker_name, w.url, w.token, w.capabilities
         FROM attempts a JOIN tasks t ON t.id = a.task_id LEFT JOIN workers w ON w.id = a.worker_id
        WHERE a.state = 'running' AND a.lease_expires_at < now() AND NOT (a.id = ANY($1::uuid[]))
        ORDER BY a.lease_expires_at
        LIMIT 500`,
      [[...this.running.keys()]],
    );
    const limit = this.settings.recoveryLimit;
    const reattach = expired.filter(
      (a) =>
        !this.stopping &&
        a.task_state === "running" &&
        a.worker_id !== null &&
        (a.lease_owner === null || Number(a.recoveries) < limit),
    );
    let recovered = reattach.length ? await this.reattach(reattach) : 0;
    const lost = expired.filter((a) => !reattach.includes(a));
    if (lost.length) recovered += await this.markLost(lost);
    recovered += await this.recoverStuckCancels();
    if (recovered) {
      this.hub.notify();
      this.wake();
    }
    return recovered;
  }

  /** Takes the expired leases (fenced: only if still expired and held by whom it was) and runs the attempts again here. */
  private async reattach(rows: ExpiredRow[]): Promise<number> {
    const taken = await this.db.query<{ id: string; recoveries: number }>(
      `UPDATE attempts a SET lease_owner = $2, lease_expires_at = now() + make_interval(secs => $3::int / 1000.0),
              recoveries = a.recoveries + CASE WHEN a.lease_owner IS NULL THEN 0 ELSE 1 END
         FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, owner text), tasks t
        WHERE a.id = x.id AND a.lease_owner IS NOT DISTINCT FROM x.owner AND a.state = 'running'
          AND a.lease_expires_at < now() AND t.id = a.task_id AND t.state = 'running'
          AND (a.lease_owner IS NULL OR a.recoveries < $4)
        RETURNING a.id, a.recoveries`,
      [
        JSON.stringify(rows.map((r) => ({ id: r.attempt_id, owner: r.lease_owner }))),
        this.owner,
        this.settings.leaseMs,
        this.settings.recoveryLimit,
      ],
    );
    const byId = new Map(rows.map((r) => [r.attempt_id, r]));
    for (const t of taken) {
      const r = byId.get(t.id);
      if (!r?.worker_id || !r.worker_name || !r.url) continue;
      const handedBack = r.lease_owner === null;
      this.events.append({
        taskId: r.task_id,
        type: "attempt_reattached",
        actor: "system",
        data: {
          attempt: Number(r.number),
          worker: r.worker_name,
          from: r.lease_owner,
          handedBack,
          recovery: Number(t.recoveries),
          of: this.settings.recoveryLimit,
          reason: handedBack
            ? "The process that ran this attempt handed it back at shutdown; re-attached by its Idempotency-Key."
            : `The lease of ${r.lease_owner} expired (that process stopped); re-attached by its Idempotency-Key (recovery ${t.recoveries} of ${this.settings.recoveryLimit}).`,
        },
      });
      this.log.info(
        {
          attemptId: r.attempt_id,
          taskId: r.task_id,
          attempt: Number(r.number),
          from: r.lease_owner,
          recovery: Number(t.recoveries),
        },
        "re-attaching to an attempt whose process stopped",
      );
      this.launch(
        {
          attemptId: r.attempt_id,
          taskId: r.task_id,
          number: Number(r.number),
          spec: r.spec,
          riskTier: Number(r.risk_tier),
          critique: r.critique,
        },
        { id: r.worker_id, name: r.worker_name, url: r.url, token: r.token, capabilities: r.capabilities ?? [] },
        new Date(r.started_at).getTime(),
      );
    }
    return taken.length;
  }

  /**
   * Attempts that cannot be re-attached (recovery limit reached, worker removed, task being canceled):
   * tells their worker to stop, marks them `lost`, and queues each task again as a new attempt, or
   * fails it when its attempts are used up; a canceling task is canceled.
   */
  private async markLost(expired: ExpiredRow[]): Promise<number> {
    const cancels = new Map<string, { confirmed: boolean; detail: string }>();
    const limit = this.settings.recoveryLimit;
    await Promise.all(
      expired.map(async (a) => {
        if (!a.worker_id || !a.url || !a.worker_name) return;
        cancels.set(
          a.attempt_id,
          await this.client.cancel(
            { id: a.worker_id, name: a.worker_name, url: a.url, token: a.token },
            {
              taskId: a.task_id,
              attempt: a.number,
              reason: "The agency process that ran this attempt stopped; the attempt is abandoned.",
            },
          ),
        );
      }),
    );
    const byId = new Map(expired.map((a) => [a.attempt_id, a]));
    return this.units.run(async (unit) => {
      const rows = await unit.tx.$queryRawUnsafe<
        {
          attempt_id: string;
          number: number;
          lease_owner: string | null;
          recoveries: number;
          task_id: string;
          task_state: string;
          failures: number;
          redispatches: number;
          risk_tier: number;
        }[]
      >(
        `SELECT a.id AS attempt_id, a.number, a.lease_owner, a.recoveries, t.id AS task_id, t.state AS task_state,
                t.failures, t.redispatches, t.risk_tier::int AS risk_tier
           FROM attempts a JOIN tasks t ON t.id = a.task_id
          WHERE a.id IN (SELECT jsonb_array_elements_text($1::jsonb)::uuid)
            AND a.state = 'running' AND a.lease_expires_at < now()
          FOR UPDATE OF a, t SKIP LOCKED`,
        JSON.stringify(expired.map((a) => a.attempt_id)),
      );
      const changes: StateChange[] = [];
      for (const r of rows) {
        const cancel = cancels.get(r.attempt_id);
        const told = `Worker told to stop: ${cancel ? (cancel.confirmed ? `confirmed (${cancel.detail})` : `unconfirmed (${cancel.detail})`) : "no worker"}.`;
        const owner = r.lease_owner ?? "an unknown process";
        const why =
          r.task_state !== "running"
            ? `Lease of ${owner} expired: that process stopped while the attempt ran.`
            : !byId.get(r.attempt_id)?.worker_id
              ? `Lease of ${owner} expired: that process stopped while the attempt ran, and its worker was removed, so it cannot be re-attached.`
              : `Lease of ${owner} expired: that process stopped while the attempt ran, after it had been re-attached ${r.recoveries} time${r.recoveries === 1 ? "" : "s"} (RECOVERY_LIMIT ${limit}): a crash loop; not re-attached again.`;
        const error = `${why} ${told}`;
        await unit.tx.$executeRawUnsafe(
          `UPDATE attempts SET state = 'lost', finished_at = now(), error = $2, lease_owner = NULL, lease_expires_at = NULL
            WHERE id = $1::uuid`,
          r.attempt_id,
          error,
        );
        unit.events.push({
          taskId: r.task_id,
          type: "attempt_lost",
          actor: "system",
          data: { attempt: r.number, error },
        });
        const lostRecord = taskResult(
          r.task_id,
          { id: r.attempt_id, number: r.number },
          byId.get(r.attempt_id)?.worker_name ?? null,
          null,
          error,
          // A running attempt has no summary or result yet: the lost one is stored with none.
          { outcome: { state: "lost", error, summary: null, result: null }, artifacts: [] },
        );
        if (r.task_state === "running") {
          const next = requeueOrFail({
            attempt: r.number,
            failures: r.failures,
            allowed: this.policyFor(r.risk_tier).attempts,
            counts: true,
            mayRequeue: true,
            what: "was lost",
            error: why,
          });
          changes.push({
            taskId: r.task_id,
            from: "running",
            steps: [
              {
                to: next.state,
                by: "system",
                actor: SYSTEM_ACTORS.recovery,
                eventActor: "system",
                action: next.state === "queued" ? "task.requeue" : "task.fail",
                reason: next.reason,
                data: { attempt: r.number, recovered: true },
                before: { attempt: r.number, leaseOwner: r.lease_owner },
                after: { recovered: true },
              },
            ],
            set: { failures: next.failures, requeued: next.state === "queued", next_critique: null },
            provenance: [lostRecord],
          });
        } else {
          unit.provenance.push(lostRecord);
          if (r.task_state === "canceling") {
            await this.cancelDone(unit, r.task_id, cancel?.confirmed ?? false, cancel?.detail ?? "no worker");
          }
        }
      }
      await applyStateChanges(unit, changes, { strict: true });
      return rows.length;
    });
  }

  /** A task left `canceling` by a process that died after the request, with nothing running any more. */
  private async recoverStuckCancels(): Promise<number> {
    const stuck = await this.db.prisma.task.findMany({
      where: {
        state: "canceling",
        cancelRequestedAt: { lt: new Date(Date.now() - this.settings.leaseMs) },
        attempts: { none: { state: "running" } },
      },
      select: { id: true },
      take: 500,
    });
    for (const t of stuck) {
      await this.units
        .run((unit) => this.cancelDone(unit, t.id, false, "the process handling the cancel stopped"))
        .catch((err: unknown) => this.log.warn({ err, taskId: t.id }, "finishing a stuck cancel failed"));
    }
    return stuck.length;
  }

  /** Ends a cancel: `canceling` → `canceled`, audited, and on the provenance log with who, why and confirmed. */
  private async cancelDone(unit: UnitOfWork, taskId: string, confirmed: boolean, detail: string): Promise<boolean> {
    const [task] = await unit.tx.$queryRawUnsafe<{ by: string | null; reason: string | null }[]>(
      `SELECT cancel_requested_by AS by, cancel_reason AS reason FROM tasks
        WHERE id = $1::uuid AND state = 'canceling' FOR UPDATE`,
      taskId,
    );
    if (!task) return false;
    await applyStateChanges(
      unit,
      [
        {
          taskId,
          from: "canceling",
          steps: [
            {
              to: "canceled",
              by: "system",
              actor: SYSTEM_ACTORS.engine,
              eventActor: "system",
              action: "task.cancel_done",
              data: { confirmed, detail },
              after: { confirmed, detail, requestedBy: task.by, reason: task.reason },
            },
          ],
          set: { cancel_confirmed: confirmed, state_reason: task.reason },
          provenance: [taskCancel(taskId, { by: task.by, reason: task.reason, confirmed, detail })],
        },
      ],
      { strict: true },
    );
    return true;
  }

  /**
   * Second half of a cancel, for a task already moved to `canceling`: aborts the request in flight
   * (when it runs here), tells the worker through `/cancel`, and ends the task `canceled`, confirmed
   * only if the worker answered within the cancel timeout (or nothing was running).
   */
  async cancelRunning(taskId: string, reason: string): Promise<{ confirmed: boolean; detail: string }> {
    const attempt = await this.db.prisma.attempt.findFirst({
      where: { taskId, state: "running" },
      include: { worker: true },
      orderBy: { number: "desc" },
    });
    let outcome = { confirmed: true, detail: "nothing was running" };
    if (attempt) {
      const local = this.running.get(attempt.id);
      local?.ctrl.abort(new Handover(`Canceled: ${reason}`));
      if (attempt.worker) {
        outcome = await this.client.cancel(toTarget(attempt.worker), { taskId, attempt: attempt.number, reason });
      } else {
        outcome = { confirmed: false, detail: "the attempt's worker was removed" };
      }
      await local?.done;
    }
    await this.units.run(async (unit) => {
      if (attempt) {
        const error = `Canceled: ${reason}`.slice(0, 10_000);
        const ended = await unit.tx.$queryRawUnsafe<unknown[]>(
          `UPDATE attempts SET state = 'canceled', finished_at = now(), error = $2, lease_owner = NULL,
                  lease_expires_at = NULL
            WHERE id = $1::uuid AND state = 'running' RETURNING id`,
          attempt.id,
          error,
        );
        // Only if the cancel ended the attempt: an attempt that finished meanwhile has its result record.
        if (ended.length) {
          const ref = { id: attempt.id, number: attempt.number };
          unit.provenance.push(
            taskResult(taskId, ref, attempt.worker?.name ?? null, null, error, {
              // Still running when canceled: no summary or result was stored.
              outcome: { state: "canceled", error, summary: null, result: null },
              artifacts: [],
            }),
          );
        }
      }
      await this.cancelDone(unit, taskId, outcome.confirmed, outcome.detail);
    });
    return outcome;
  }
}

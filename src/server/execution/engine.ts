import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { TaskSpec } from "../../shared/task-spec.js";
import { PROTOCOL_VERSION } from "../../shared/worker-protocol.js";
import type { NewAuditEntry } from "../audit/service.js";
import { SYSTEM_ACTORS, type Trail } from "../audit/trail.js";
import type { TierPolicy } from "../config.js";
import { judgeAttempt } from "../council/council.js";
import type { Database } from "../db/database.js";
import type { Worker } from "../db/generated/client.js";
import { appendTaskEvents, type NewTaskEvent } from "../events/append.js";
import type { TaskEventHub } from "../events/task-event-hub.js";
import { newErrorId } from "../lib/public-errors.js";
import type { Logger } from "../logger.js";
import type { NewProvenanceRecord, SqlTx } from "../provenance/service.js";
import { taskCancel, taskResult } from "../tasks/decisions.js";
import type { BreakerRegistry } from "../workers/breakers.js";
import { toTarget, type WorkerService } from "../workers/service.js";
import { type Claim, type ClaimedAttempt, type ClaimWorker, claimForWorker, claimRows } from "./claim.js";
import { WorkerCallError } from "./errors.js";
import type { EventWriter } from "./event-writer.js";
import { type AttemptEnd, Finisher, type Refilled, writeTasks } from "./finisher.js";
import type { WorkerClient } from "./worker-client.js";

export interface EngineSettings {
  leaseMs: number;
  dispatchIntervalMs: number;
  recoveryIntervalMs: number;
  healthIntervalMs: number;
  maxAutoRedispatch: number;
  retryPolicy: Record<1 | 2 | 3, TierPolicy>;
}

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
type DispatchWorker = Pick<Worker, "id" | "name" | "capabilities" | "maxConcurrency" | "tripped">;

interface DispatchWorkerRow {
  id: string;
  name: string;
  capabilities: string[] | null;
  max_concurrency: number;
  tripped: boolean;
  busy: number;
}

type Tx = Parameters<Parameters<Database["prisma"]["$transaction"]>[0]>[0];

/** What a transaction that ends attempts writes last: its trail, then its task events. */
interface Endings {
  events: NewTaskEvent[];
  audit: NewAuditEntry[];
  provenance: NewProvenanceRecord[];
}

const tierOf = (riskTier: number): 1 | 2 | 3 => (riskTier === 1 || riskTier === 3 ? riskTier : 2);

/** Abort reasons that end a run without the run writing its end: someone else finishes the attempt. */
class Handover extends WorkerCallError {
  constructor(kind: "canceled", message: string) {
    super(kind, message, { retryable: false, countsAgainstWorker: false });
  }
}

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
    private readonly trail: Trail,
  ) {
    this.finisher = new Finisher(
      hub,
      log,
      {
        owner: this.owner,
        maxAutoRedispatch: settings.maxAutoRedispatch,
        attemptsFor: (tier) => this.policyFor(tier).attempts,
      },
      () => this.wake(),
      trail,
      (tx, written) => this.refill(tx, written),
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
    await this.recover().catch((err: unknown) => this.log.error({ err }, "recovering expired leases failed"));
    const every = (ms: number, fn: () => Promise<unknown>, what: string) => {
      this.timers.push(
        setInterval(() => {
          if (!this.stopping) fn().catch((err: unknown) => this.log.error({ err }, `${what} failed`));
        }, ms).unref(),
      );
    };
    every(this.settings.dispatchIntervalMs, () => this.dispatch(), "dispatching");
    every(Math.max(100, Math.floor(this.settings.leaseMs / 3)), () => this.renewLeases(), "renewing leases");
    every(this.settings.recoveryIntervalMs, () => this.recover(), "recovering expired leases");
    every(this.settings.healthIntervalMs, () => this.workers.pollHealth(), "polling worker health");
    every(
      Math.max(50, Math.min(1000, this.settings.dispatchIntervalMs)),
      () => this.workers.probeOpenBreakers(),
      "probing breakers",
    );
    void this.workers.pollHealth().catch((err: unknown) => this.log.error({ err }, "polling worker health failed"));
    this.wake();
  }

  /**
   * Stops dispatching and gives back what runs here: each attempt is aborted and its task queued
   * again at once (a graceful stop need not wait for leases to expire).
   */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTimer = null;
    while (this.dispatching) await this.dispatching;
    // Until none is left: a batch of ends committing meanwhile may have launched the attempts it claimed.
    for (let runs = [...this.running.values()]; runs.length; runs = [...this.running.values()]) {
      for (const r of runs) {
        r.ctrl.abort(
          new WorkerCallError("canceled", "The agency process is shutting down; the task goes back to the queue.", {
            retryable: false,
            countsAgainstWorker: false,
          }),
        );
      }
      await Promise.allSettled(runs.map((r) => r.done));
    }
    await this.events.flush();
    this.started = false;
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
      `SELECT w.id, w.name, w.capabilities, w.max_concurrency, w.tripped,
              (SELECT count(*) FROM attempts a WHERE a.worker_id = w.id AND a.state = 'running')::int AS busy
         FROM workers w WHERE w.enabled`,
    );
    const workers: DispatchWorker[] = rows.map((r) => ({
      id: r.id,
      name: r.name,
      capabilities: r.capabilities ?? [],
      maxConcurrency: Number(r.max_concurrency),
      tripped: r.tripped,
    }));
    for (const w of workers) this.breakers.sync(w.id, w.name, w.tripped);
    const busy = new Map(rows.map((r) => [r.id, Number(r.busy)]));
    const available = workers
      .filter((w) => !w.tripped && this.breakers.state(w.id) === "closed")
      .map((w) => ({ w, free: w.maxConcurrency - (busy.get(w.id) ?? 0) }))
      .filter((x) => x.free > 0)
      .sort((a, b) => b.free - a.free);
    for (const { w, free } of available) {
      if (this.stopping) return;
      const got = await claimForWorker(this.trail, w.id, free, this.owner, this.settings.leaseMs);
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
      const capable = workers.filter((w) => w.capabilities.includes(capability));
      const usable = capable.filter((w) => !w.tripped && this.breakers.state(w.id) === "closed");
      let reason: string | null = null;
      if (capable.length === 0) {
        reason = `No enabled worker has the capability "${capability}"; register one (workers.register) or enable one.`;
      } else if (usable.length === 0) {
        const states = capable.map(
          (w) => `${w.name}: ${w.tripped ? "tripped" : this.breakers.state(w.id).replace("_", "-")}`,
        );
        reason = `Every worker with "${capability}" has an open circuit breaker (${states.join(", ")}); waiting for one to recover.`;
      }
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
   * the transaction has committed.
   */
  private async refill(tx: SqlTx, written: AttemptEnd[]): Promise<Refilled> {
    const refilled: Refilled = { provenance: [], events: [], audit: [], committed: () => {} };
    if (this.stopping || !this.started) return refilled;
    const freed = new Map<string, number>();
    for (const end of written) {
      const workerId = this.running.get(end.attemptId)?.workerId;
      if (workerId) freed.set(workerId, (freed.get(workerId) ?? 0) + 1);
    }
    const claims: Claim[] = [];
    for (const [workerId, slots] of freed) {
      if (this.breakers.state(workerId) !== "closed") continue;
      const claim = await claimRows(tx, {
        workerId,
        limit: slots,
        owner: this.owner,
        leaseMs: this.settings.leaseMs,
        lockWorker: false,
      });
      if (!claim?.claimed.length) continue;
      claims.push(claim);
      refilled.provenance.push(...claim.provenance);
      refilled.events.push(...claim.events);
      refilled.audit.push(...claim.audit);
    }
    refilled.committed = () => this.launchAll(claims);
    return refilled;
  }

  private launchAll(claims: Claim[]): void {
    if (!claims.length) return;
    this.hub.notify();
    for (const { worker, claimed } of claims) for (const c of claimed) this.launch(c, worker);
  }

  private launch(c: ClaimedAttempt, w: ClaimWorker): void {
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
    entry.done = this.run(c, w, ctrl)
      .catch((err: unknown) => this.log.error({ err, attemptId: c.attemptId }, "running an attempt failed"))
      .finally(() => {
        this.running.delete(c.attemptId);
        this.wake();
      });
  }

  private async run(c: ClaimedAttempt, w: ClaimWorker, ctrl: AbortController): Promise<void> {
    const spec: TaskSpec = c.spec;
    const policy = this.policyFor(c.riskTier);
    const deadlineMs = spec.budget.maxDurationSec ? spec.budget.maxDurationSec * 1000 : policy.deadlineMs;
    const deadline = Date.now() + deadlineMs;
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
      const shutdown = ctrl.signal.aborted && reason instanceof WorkerCallError && reason.kind === "canceled";
      if (shutdown) {
        // The task goes back to the queue: the worker must not go on with this attempt beside the next one.
        await this.client.cancel(toTarget(w), { taskId: c.taskId, attempt: c.number, reason: reason.message });
      }
      end = {
        kind: "failed",
        attemptId: c.attemptId,
        taskId: c.taskId,
        number: c.number,
        workerName: w.name,
        tries: Math.max(tries, 1),
        error: err.message,
        // Neither an open breaker nor our own shutdown is the task's fault.
        countsAsFailure: !(shutdown || err.kind === "breaker_open"),
      };
    }
    // The attempt's log lines go into the event log before its end does.
    await this.events.flush();
    await this.finisher.finish(end);
  }

  /** Renews the leases of every attempt running here in one statement; aborts runs whose lease was lost. */
  async renewLeases(): Promise<void> {
    if (this.running.size === 0) return;
    const renewed = await this.db.query<{ id: string }>(
      `UPDATE attempts SET lease_expires_at = now() + make_interval(secs => $2::int / 1000.0)
        WHERE lease_owner = $1 AND state = 'running' RETURNING id`,
      [this.owner, this.settings.leaseMs],
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
        r.ctrl.abort(new Handover("canceled", "This process lost the attempt's lease; another process recovered it."));
      }
    }
  }

  /**
   * Finds attempts whose lease expired (their process died or stalled), tells their worker to stop
   * them, marks them `lost`, and queues each task again as a new attempt, or fails it when its
   * attempts are used up. Also finishes cancellations their process did not live to finish.
   */
  async recover(): Promise<number> {
    const expired = await this.db.prisma.attempt.findMany({
      where: { state: "running", leaseExpiresAt: { lt: new Date() } },
      include: { worker: true },
      take: 500,
    });
    const cancels = new Map<string, { confirmed: boolean; detail: string }>();
    const expiredWorker = new Map(expired.map((a) => [a.id, a.worker?.name ?? null]));
    await Promise.all(
      expired.map(async (a) => {
        if (!a.worker) return;
        cancels.set(
          a.id,
          await this.client.cancel(toTarget(a.worker), {
            taskId: a.taskId,
            attempt: a.number,
            reason: "The agency process that ran this attempt stopped; the attempt is abandoned.",
          }),
        );
      }),
    );
    let recovered = 0;
    if (expired.length) {
      recovered = await this.trail.transaction(async (tx) => {
        const rows = await tx.$queryRawUnsafe<
          {
            attempt_id: string;
            number: number;
            lease_owner: string | null;
            task_id: string;
            task_state: string;
            failures: number;
            redispatches: number;
            risk_tier: number;
          }[]
        >(
          `SELECT a.id AS attempt_id, a.number, a.lease_owner, t.id AS task_id, t.state AS task_state, t.failures,
                  t.redispatches, t.risk_tier::int AS risk_tier
             FROM attempts a JOIN tasks t ON t.id = a.task_id
            WHERE a.id IN (SELECT jsonb_array_elements_text($1::jsonb)::uuid)
              AND a.state = 'running' AND a.lease_expires_at < now()
            FOR UPDATE OF a, t SKIP LOCKED`,
          JSON.stringify(expired.map((a) => a.id)),
        );
        const out: Endings = { events: [], audit: [], provenance: [] };
        const { events } = out;
        const tasks: Parameters<typeof writeTasks>[1] = [];
        for (const r of rows) {
          const cancel = cancels.get(r.attempt_id);
          const error = `Lease of ${r.lease_owner ?? "an unknown process"} expired: that process stopped while the attempt ran. Worker told to stop: ${cancel ? (cancel.confirmed ? `confirmed (${cancel.detail})` : `unconfirmed (${cancel.detail})`) : "no worker"}.`;
          await tx.attempt.update({
            where: { id: r.attempt_id },
            data: { state: "lost", finishedAt: new Date(), error, leaseOwner: null, leaseExpiresAt: null },
          });
          events.push({ taskId: r.task_id, type: "attempt_lost", actor: "system", data: { attempt: r.number, error } });
          out.provenance.push(
            taskResult(
              r.task_id,
              { id: r.attempt_id, number: r.number },
              expiredWorker.get(r.attempt_id) ?? null,
              null,
              error,
              // A running attempt has no summary or result yet: the lost one is stored with none.
              { outcome: { state: "lost", error, summary: null, result: null }, artifacts: [] },
            ),
          );
          if (r.task_state === "running") {
            const failures = r.failures + 1;
            const allowed = this.policyFor(r.risk_tier).attempts;
            const requeue = failures < allowed;
            const reason = requeue
              ? `Attempt ${r.number} was lost (${failures} of ${allowed} allowed failures); queued again.`
              : `Attempt ${r.number} was lost and no attempts are left (${failures} of ${allowed}).`;
            tasks.push({
              id: r.task_id,
              state: requeue ? "queued" : "failed",
              reason,
              redispatches: r.redispatches,
              failures,
              requeued: requeue,
              next_critique: null,
            });
            events.push({
              taskId: r.task_id,
              type: "state_changed",
              fromState: "running",
              toState: requeue ? "queued" : "failed",
              actor: "system",
              data: { name: requeue ? "requeue" : "fail", attempt: r.number, reason, recovered: true },
            });
            out.audit.push({
              actor: SYSTEM_ACTORS.recovery,
              action: requeue ? "task.requeue" : "task.fail",
              resource: { type: "task", id: r.task_id },
              before: { state: "running", attempt: r.number, leaseOwner: r.lease_owner },
              after: { state: requeue ? "queued" : "failed", reason, recovered: true },
            });
          } else if (r.task_state === "canceling") {
            await this.finishCancelTx(tx, r.task_id, cancel?.confirmed ?? false, cancel?.detail ?? "no worker", out);
          }
        }
        await writeTasks(tx, tasks);
        await this.trail.write(tx, out.audit, out.provenance, events);
        await appendTaskEvents(tx, events);
        return rows.length;
      });
    }
    recovered += await this.recoverStuckCancels();
    if (recovered) {
      this.hub.notify();
      this.wake();
    }
    return recovered;
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
      await this.trail
        .transaction(async (tx) => {
          const out: Endings = { events: [], audit: [], provenance: [] };
          await this.finishCancelTx(tx, t.id, false, "the process handling the cancel stopped", out);
          await this.trail.write(tx, out.audit, out.provenance, out.events);
          await appendTaskEvents(tx, out.events);
        })
        .catch((err: unknown) => this.log.warn({ err, taskId: t.id }, "finishing a stuck cancel failed"));
    }
    return stuck.length;
  }

  /** Ends a cancel: `canceling` → `canceled`, audited, and on the provenance chain with who, why and confirmed. */
  private async finishCancelTx(
    tx: Tx,
    taskId: string,
    confirmed: boolean,
    detail: string,
    out: Endings,
  ): Promise<boolean> {
    const [task] = await tx.$queryRawUnsafe<{ by: string | null; reason: string | null }[]>(
      `UPDATE tasks SET state = 'canceled', cancel_confirmed = $2, updated_at = now()
        WHERE id = $1::uuid AND state = 'canceling'
        RETURNING cancel_requested_by AS by, cancel_reason AS reason`,
      taskId,
      confirmed,
    );
    if (!task) return false;
    out.audit.push({
      actor: SYSTEM_ACTORS.engine,
      action: "task.cancel_done",
      resource: { type: "task", id: taskId },
      before: { state: "canceling" },
      after: { state: "canceled", confirmed, detail, requestedBy: task.by, reason: task.reason },
    });
    out.provenance.push(taskCancel(taskId, { by: task.by, reason: task.reason, confirmed, detail }));
    out.events.push({
      taskId,
      type: "state_changed",
      fromState: "canceling",
      toState: "canceled",
      actor: "system",
      data: { name: "cancel_done", confirmed, detail },
    });
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
      local?.ctrl.abort(new Handover("canceled", `Canceled: ${reason}`));
      if (attempt.worker) {
        outcome = await this.client.cancel(toTarget(attempt.worker), { taskId, attempt: attempt.number, reason });
      } else {
        outcome = { confirmed: false, detail: "the attempt's worker was removed" };
      }
      await local?.done;
    }
    await this.trail.transaction(async (tx) => {
      const out: Endings = { events: [], audit: [], provenance: [] };
      if (attempt) {
        const error = `Canceled: ${reason}`.slice(0, 10_000);
        const { count } = await tx.attempt.updateMany({
          where: { id: attempt.id, state: "running" },
          data: {
            state: "canceled",
            finishedAt: new Date(),
            error,
            leaseOwner: null,
            leaseExpiresAt: null,
          },
        });
        // Only if the cancel ended the attempt: an attempt that finished meanwhile has its result record.
        if (count) {
          const ref = { id: attempt.id, number: attempt.number };
          out.provenance.push(
            taskResult(taskId, ref, attempt.worker?.name ?? null, null, error, {
              // Still running when canceled: no summary or result was stored.
              outcome: { state: "canceled", error, summary: null, result: null },
              artifacts: [],
            }),
          );
        }
      }
      await this.finishCancelTx(tx, taskId, outcome.confirmed, outcome.detail, out);
      await this.trail.write(tx, out.audit, out.provenance, out.events);
      await appendTaskEvents(tx, out.events);
    });
    this.hub.notify();
    this.wake();
    return outcome;
  }
}

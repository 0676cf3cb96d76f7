import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { ApprovalPolicy, TierPolicy } from "../config.js";
import type { Database } from "../db/database.js";
import type { UnitOfWorkRunner } from "../db/unit-of-work.js";
import type { Logger } from "../logger.js";
import type { BreakerRegistry } from "../workers/breakers.js";
import type { WorkerService } from "../workers/service.js";
import { AttemptRunner } from "./attempt-runner.js";
import { cancelRunning } from "./cancel.js";
import { Dispatcher } from "./dispatcher.js";
import type { EventWriter } from "./event-writer.js";
import { Finisher } from "./finisher.js";
import { Recovery } from "./recovery.js";
import type { WorkerClient } from "./worker-client.js";

export { HELD_RESULT_BYTES_MAX, HELD_RESULTS_MAX } from "./attempt-runner.js";

export interface EngineSettings {
  leaseMs: number;
  dispatchIntervalMs: number;
  recoveryIntervalMs: number;
  healthIntervalMs: number;
  maxAutoRedispatch: number;
  retryPolicy: Record<1 | 2 | 3, TierPolicy>;
  /** Which tiers' accepted attempts wait for a person's approval (APPROVAL_POLICY). */
  approvalPolicy: Record<1 | 2 | 3, ApprovalPolicy>;
  /** How long `stop()` lets running attempts finish before handing the rest back (SHUTDOWN_GRACE_MS). */
  shutdownGraceMs: number;
  /** Re-attachments of one attempt after its process stopped, before it is marked lost (RECOVERY_LIMIT). */
  recoveryLimit: number;
}

const tierOf = (riskTier: number): 1 | 2 | 3 => (riskTier === 1 || riskTier === 3 ? riskTier : 2);

/**
 * Runs queued tasks on workers. One per process; several processes may share a Postgres server:
 * claims use SKIP LOCKED, every running attempt holds a lease this process renews, and every
 * write that ends an attempt is fenced by that lease. Its jobs have their own modules: dispatching
 * (dispatcher.ts), running an attempt (attempt-runner.ts), leases and recovery (recovery.ts),
 * cancel (cancel.ts), their SQL (statements.ts); this class starts and stops them.
 */
export class ExecutionEngine {
  /** This process's lease identity: host, pid and a per-boot nonce, so a restarted process is a new owner. */
  readonly owner = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private readonly runner: AttemptRunner;
  private readonly dispatcher: Dispatcher;
  private readonly recovery: Recovery;
  private timers: NodeJS.Timeout[] = [];
  /** Lease renewal runs apart from the other timers: it goes on while `stop()` lets attempts finish. */
  private renewTimer: NodeJS.Timeout | null = null;
  private started = false;
  private stopping = false;

  constructor(
    private readonly db: Database,
    private readonly log: Logger,
    private readonly workers: WorkerService,
    breakers: BreakerRegistry,
    private readonly client: WorkerClient,
    private readonly events: EventWriter,
    private readonly settings: EngineSettings,
    private readonly units: UnitOfWorkRunner,
  ) {
    const active = { active: () => this.started && !this.stopping };
    const policyFor = (tier: number) => this.policyFor(tier);
    const finisher = new Finisher(
      log,
      {
        owner: this.owner,
        maxAutoRedispatch: settings.maxAutoRedispatch,
        attemptsFor: (t) => policyFor(t).attempts,
        approvalRequired: (t) => settings.approvalPolicy[tierOf(t)].required,
        isConnectivity: (err) => db.availability.isConnectivity(err),
      },
      units,
      (unit, written) => this.dispatcher.refill(unit, written),
    );
    this.runner = new AttemptRunner(
      db,
      log,
      this.owner,
      client,
      events,
      workers,
      finisher,
      { leaseMs: settings.leaseMs, policyFor },
      () => this.wake(),
    );
    this.dispatcher = new Dispatcher(
      db,
      log,
      units,
      workers,
      breakers,
      this.runner,
      this.owner,
      settings.leaseMs,
      active,
    );
    this.recovery = new Recovery(
      db,
      log,
      units,
      client,
      events,
      this.runner,
      this.owner,
      { leaseMs: settings.leaseMs, recoveryLimit: settings.recoveryLimit, policyFor },
      active,
    );
  }

  policyFor(riskTier: number): TierPolicy {
    return this.settings.retryPolicy[tierOf(riskTier)];
  }

  get inFlight(): number {
    return this.runner.size;
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.stopping = false;
    await this.workers.restoreTrippedBreakers();
    await this.recovery.recover().catch((err: unknown) => this.failed(err, "recovering expired leases"));
    const every = (ms: number, fn: () => Promise<unknown>, what: string) => {
      this.timers.push(
        setInterval(() => {
          if (!this.stopping) fn().catch((err: unknown) => this.failed(err, what));
        }, ms).unref(),
      );
    };
    every(this.settings.dispatchIntervalMs, () => this.dispatcher.dispatch(), "dispatching");
    this.renewTimer = setInterval(
      () => void this.runner.renewLeases().catch((err: unknown) => this.failed(err, "renewing leases")),
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
   * Drains: stops claiming, lets the attempts running here finish for up to `shutdownGraceMs`, then
   * hands the rest back for the next process to re-attach to (AttemptRunner.drain).
   */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.dispatcher.quiesce();
    await this.runner.drain(this.settings.shutdownGraceMs);
    if (this.renewTimer) clearInterval(this.renewTimer);
    this.renewTimer = null;
    await this.events.flush();
    this.started = false;
  }

  /** Looks for work soon; calls within a few milliseconds are coalesced into one pass. */
  wake(): void {
    this.dispatcher.wake();
  }

  /** Re-attaches to (or gives up) attempts whose process stopped; see Recovery. */
  async recover(): Promise<number> {
    const recovered = await this.recovery.recover();
    if (recovered) this.wake();
    return recovered;
  }

  /** Second half of a cancel, for a task already moved to `canceling` (cancel.ts). */
  cancelRunning(taskId: string, reason: string): Promise<{ confirmed: boolean; detail: string }> {
    return cancelRunning({ db: this.db, units: this.units, client: this.client, runner: this.runner }, taskId, reason);
  }
}

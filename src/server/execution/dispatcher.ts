import type { Database } from "../db/database.js";
import type { Worker } from "../db/generated/client.js";
import type { UnitOfWork, UnitOfWorkRunner } from "../db/unit-of-work.js";
import type { Logger } from "../logger.js";
import type { BreakerRegistry } from "../workers/breakers.js";
import type { WorkerService } from "../workers/service.js";
import type { AttemptRunner } from "./attempt-runner.js";
import { type Claim, claimForWorker, claimRows } from "./claim.js";
import {
  type DispatchCandidate,
  type DispatchHealth,
  type DispatchState,
  dispatchOrder,
  mayRefill,
  waitingReason,
} from "./dispatch-order.js";
import type { AttemptEnd } from "./finisher.js";
import * as sql from "./statements.js";

const WAITING_REASON_EVERY_MS = 250;

/** What dispatching needs of a worker. */
type DispatchWorker = Pick<Worker, "id" | "name" | "capabilities" | "maxConcurrency" | "tripped"> & DispatchCandidate;

/**
 * Claims queued tasks for workers and launches them: on a wake (a task queued, a slot freed: passes
 * coalesced), on a timer, and in the very unit of work that frees a slot (refill). Says on each
 * queued task why it waits when no worker can take it.
 */
export class Dispatcher {
  private dispatching: Promise<void> | null = null;
  private dispatchAgain = false;
  private wakeTimer: NodeJS.Timeout | null = null;
  private reasonsAt = 0;

  constructor(
    private readonly db: Database,
    private readonly log: Logger,
    private readonly units: UnitOfWorkRunner,
    private readonly workers: WorkerService,
    private readonly breakers: BreakerRegistry,
    private readonly runner: AttemptRunner,
    private readonly owner: string,
    private readonly leaseMs: number,
    /** Whether the engine is started and not stopping. */
    private readonly state: { active(): boolean },
  ) {}

  /** Cancels a pending wake and waits for a pass in progress (the engine is stopping). */
  async quiesce(): Promise<void> {
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTimer = null;
    while (this.dispatching) await this.dispatching;
  }

  /** Looks for work soon; calls within a few milliseconds are coalesced into one pass. */
  wake(): void {
    if (!this.state.active() || this.wakeTimer) return;
    this.wakeTimer = setTimeout(() => {
      this.wakeTimer = null;
      this.dispatch().catch((err: unknown) => this.log.error({ err }, "dispatching failed"));
    }, 2);
  }

  /** One dispatch pass (coalesced: a call during a pass makes it run once more). */
  dispatch(): Promise<void> {
    if (!this.state.active()) return Promise.resolve();
    if (this.dispatching) {
      this.dispatchAgain = true;
      return this.dispatching;
    }
    this.dispatching = (async () => {
      try {
        do {
          this.dispatchAgain = false;
          await this.pass();
        } while (this.dispatchAgain && this.state.active());
      } finally {
        this.dispatching = null;
      }
    })();
    return this.dispatching;
  }

  private async pass(): Promise<void> {
    // One plain query per pass (it runs after every claim and every finished batch): the enabled
    // workers with their running attempts.
    const rows = await sql.enabledWorkers(this.db);
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
      dispatchState: r.dispatch_state as DispatchState,
    }));
    // Never to a worker that is down or whose breaker is open; by load and recent error rate (dispatch-order.ts).
    for (const { worker: w, claim: free } of dispatchOrder(workers)) {
      if (!this.state.active()) return;
      const got = await claimForWorker(this.units, w.id, free, this.owner, this.leaseMs);
      if (got?.claimed.length) this.launchAll([got]);
    }
    // A draining worker whose last attempt ended is drained (it is sent nothing, so its count only falls).
    const drainedOut = workers.filter((w) => w.dispatchState === "draining" && w.busy === 0).map((w) => w.id);
    if (drainedOut.length) await this.workers.settleDrains(drainedOut);
    // Waiting reasons change slowly; refreshing them on every wake would cost two queries per finished batch.
    if (Date.now() - this.reasonsAt >= WAITING_REASON_EVERY_MS) {
      this.reasonsAt = Date.now();
      await this.updateWaitingReasons(workers);
    }
  }

  /** Says on each queued task why it waits, when no worker could take it; clears it when one can. */
  private async updateWaitingReasons(workers: DispatchWorker[]): Promise<void> {
    // Plain SQL: this runs several times a second while tasks flow.
    const caps = await sql.queuedCapabilities(this.db);
    for (const { capability } of caps) {
      const reason = waitingReason(
        capability,
        workers.filter((w) => w.capabilities.includes(capability)),
      );
      await sql.setWaitingReason(this.db, capability, reason);
    }
  }

  /**
   * Claims again, in the transaction that ends a batch of attempts, as many tasks as those attempts
   * freed slots on their workers: a slot is refilled in the same round trips that freed it instead
   * of waiting for a dispatch pass and a claim transaction of its own. The claims are launched once
   * the unit has committed.
   */
  async refill(unit: UnitOfWork, written: AttemptEnd[]): Promise<void> {
    if (!this.state.active()) return;
    const freed = new Map<string, number>();
    for (const end of written) {
      const workerId = this.runner.workerOf(end.attemptId);
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
        leaseMs: this.leaseMs,
        lockWorker: false,
      });
      if (claim?.claimed.length) claims.push(claim);
    }
    if (claims.length) unit.afterCommit(() => this.launchAll(claims));
  }

  private launchAll(claims: Claim[]): void {
    for (const { worker, claimed } of claims) for (const c of claimed) this.runner.launch(c, worker);
  }
}

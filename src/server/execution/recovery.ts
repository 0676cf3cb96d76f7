import { SYSTEM_ACTORS } from "../audit/trail.js";
import type { TierPolicy } from "../config.js";
import type { Database } from "../db/database.js";
import type { UnitOfWorkRunner } from "../db/unit-of-work.js";
import type { Logger } from "../logger.js";
import { taskResult } from "../tasks/decisions.js";
import { applyStateChanges, requeueOrFail, type StateChange } from "../tasks/state-changes.js";
import { traceCancel } from "../telemetry/tracing.js";
import type { AttemptRunner } from "./attempt-runner.js";
import { cancelDone } from "./cancel.js";
import { toClaimedAttempt } from "./claim.js";
import type { EventWriter } from "./event-writer.js";
import type { ExpiredRow } from "./statements.js";
import * as sql from "./statements.js";
import type { WorkerClient } from "./worker-client.js";

export interface RecoverySettings {
  leaseMs: number;
  recoveryLimit: number;
  policyFor(riskTier: number): TierPolicy;
}

/** Leases and recovery: attempts whose process stopped are re-attached, or past the limit lost. */
export class Recovery {
  constructor(
    private readonly db: Database,
    private readonly log: Logger,
    private readonly units: UnitOfWorkRunner,
    private readonly client: WorkerClient,
    private readonly events: EventWriter,
    private readonly runner: AttemptRunner,
    private readonly owner: string,
    private readonly settings: RecoverySettings,
    /** Whether the engine is started and not stopping (no re-attaching while it stops). */
    private readonly state: { active(): boolean },
  ) {}

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
    const expired = await sql.expiredAttempts(this.db, this.runner.ids());
    const limit = this.settings.recoveryLimit;
    const reattach = expired.filter(
      (a) =>
        this.state.active() &&
        a.task_state === "running" &&
        a.worker_id !== null &&
        (a.lease_owner === null || Number(a.recoveries) < limit),
    );
    let recovered = reattach.length ? await this.reattach(reattach) : 0;
    const lost = expired.filter((a) => !reattach.includes(a));
    if (lost.length) recovered += await this.markLost(lost);
    recovered += await this.recoverStuckCancels();
    return recovered;
  }

  /** Takes the expired leases (fenced: only if still expired and held by whom it was) and runs the attempts again here. */
  private async reattach(rows: ExpiredRow[]): Promise<number> {
    const taken = await sql.takeExpiredLeases(
      this.db,
      rows,
      this.owner,
      this.settings.leaseMs,
      this.settings.recoveryLimit,
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
      this.runner.launch(
        toClaimedAttempt(r),
        {
          id: r.worker_id,
          name: r.worker_name,
          url: r.url,
          token: r.token,
          capabilities: r.capabilities ?? [],
          protocol: r.protocol ?? "v1",
        },
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
        const target = {
          id: a.worker_id,
          name: a.worker_name,
          url: a.url,
          token: a.token,
          protocol: a.protocol ?? "v1",
        };
        cancels.set(
          a.attempt_id,
          // A span of the task's trace: the /cancel carries it.
          await traceCancel(
            { taskId: a.task_id, number: a.number, workerName: a.worker_name, traceParent: a.trace_parent },
            () =>
              this.client.cancel(target, {
                taskId: a.task_id,
                attempt: a.number,
                reason: "The agency process that ran this attempt stopped; the attempt is abandoned.",
              }),
          ),
        );
      }),
    );
    const byId = new Map(expired.map((a) => [a.attempt_id, a]));
    return this.units.run(async (unit) => {
      const rows = await sql.lockExpired(
        unit.tx,
        expired.map((a) => a.attempt_id),
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
        await sql.markAttemptLost(unit.tx, r.attempt_id, error);
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
            allowed: this.settings.policyFor(r.risk_tier).attempts,
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
            await cancelDone(unit, r.task_id, cancel?.confirmed ?? false, cancel?.detail ?? "no worker");
          }
        }
      }
      await applyStateChanges(unit, changes, { strict: true });
      return rows.length;
    });
  }

  /** A task left `canceling` by a process that died after the request, with nothing running any more. */
  private async recoverStuckCancels(): Promise<number> {
    const stuck = await sql.stuckCancels(this.db, this.settings.leaseMs);
    for (const t of stuck) {
      await this.units
        .run((unit) => cancelDone(unit, t.id, false, "the process handling the cancel stopped"))
        .catch((err: unknown) => this.log.warn({ err, taskId: t.id }, "finishing a stuck cancel failed"));
    }
    return stuck.length;
  }
}

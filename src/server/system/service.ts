import { readFileSync } from "node:fs";
import { type ApprovalPolicy, DEFAULT_APPROVAL_POLICY, type TierPolicy } from "../config.js";
import type { Database } from "../db/database.js";
import { migrationStatus } from "../db/migrate.js";
import type { WorkerService } from "../workers/service.js";

const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string };
export const VERSION = pkg.version;

export interface Readiness {
  ready: boolean;
  reason?: string;
  dbLatencyMs?: number;
  /** Why the database did not answer: for the server's log, never for a client. */
  error?: unknown;
}

export interface HealthSummary {
  ready: boolean;
  status: "ready" | "unready";
}

export type SystemHealth = Awaited<ReturnType<SystemService["health"]>>;

export class SystemService {
  private readonly startedAt = Date.now();

  constructor(
    private readonly db: Database,
    private readonly workers?: WorkerService,
    private readonly retryPolicy?: Record<1 | 2 | 3, TierPolicy>,
    private readonly approvalPolicy: Record<1 | 2 | 3, ApprovalPolicy> = DEFAULT_APPROVAL_POLICY,
  ) {}

  /**
   * The retry policy table (RETRY_POLICY over the defaults) and the approval policy (APPROVAL_POLICY), by
   * risk tier: what the submit form shows.
   */
  tierPolicies(): Array<TierPolicy & { tier: 1 | 2 | 3; approval: ApprovalPolicy }> {
    const table = this.retryPolicy;
    if (!table) return [];
    return ([1, 2, 3] as const).map((tier) => ({ tier, ...table[tier], approval: this.approvalPolicy[tier] }));
  }

  /** Database round trip, and every migration applied. */
  async readiness(): Promise<Readiness> {
    const t0 = performance.now();
    try {
      await this.db.query("SELECT 1");
      const dbLatencyMs = Math.round((performance.now() - t0) * 100) / 100;
      const status = await migrationStatus(this.db);
      if (status.problems.length) return { ready: false, reason: status.problems.join("; "), dbLatencyMs };
      if (status.pending.length) {
        return { ready: false, reason: `migrations not applied: ${status.pending.join(", ")}`, dbLatencyMs };
      }
      return { ready: true, dbLatencyMs };
    } catch (err) {
      return { ready: false, reason: "database unreachable", error: err };
    }
  }

  /**
   * What anyone who can reach the port may learn: whether the server is ready. Workers, capabilities,
   * breakers, versions and database errors are for signed-in callers (health()).
   */
  async summary(): Promise<HealthSummary> {
    const r = await this.readiness();
    return { ready: r.ready, status: r.ready ? "ready" : "unready" };
  }

  /** Process, database and every worker with its breaker state; `degraded` when the database or all workers are. */
  async health() {
    const r = await this.readiness();
    // Listed whenever the database answers, even with a migration pending: that is when they matter.
    const workers = this.workers ? await this.workers.list().catch(() => []) : [];
    const usable = workers.filter((w) => w.enabled && w.breaker.state === "closed" && w.health !== "down");
    const enabled = workers.filter((w) => w.enabled);
    const workersOk = enabled.length === 0 || usable.length > 0;
    return {
      ready: r.ready,
      status: r.ready && workersOk ? ("ok" as const) : ("degraded" as const),
      workers: workers.map((w) => ({
        id: w.id,
        name: w.name,
        enabled: w.enabled,
        capabilities: w.capabilities,
        inFlight: w.inFlight,
        maxConcurrency: w.maxConcurrency,
        breaker: w.breaker,
        health: w.health,
        healthCheckedAt: w.healthCheckedAt,
        lastError: w.lastError,
      })),
      version: VERSION,
      uptimeSec: Math.round((Date.now() - this.startedAt) / 1000),
      node: process.version,
      database: { kind: this.db.kind, ok: r.ready, latencyMs: r.dbLatencyMs ?? null, reason: r.reason ?? null },
    };
  }
}

import { randomUUID } from "node:crypto";
import type { Database } from "../db/database.js";
import type { Prisma, Worker } from "../db/generated/client.js";
import { DomainError, notFound } from "../errors.js";
import { WorkerCallError } from "../execution/errors.js";
import type { WorkerClient, WorkerTarget } from "../execution/worker-client.js";
import type { Logger } from "../logger.js";
import { assertAllowedWorkerUrl } from "./allowlist.js";
import type { BreakerRegistry } from "./breakers.js";
import type { WorkerInput } from "./config-workers.js";
import { openWorkerToken, sealWorkerToken } from "./token.js";

export type WorkerUpdate = Partial<Omit<WorkerInput, "token">> & {
  /** A new token; null removes it; absent keeps it. */
  token?: string | null;
  enabled?: boolean;
};

export function toTarget(w: Pick<Worker, "id" | "name" | "url" | "token">): WorkerTarget {
  return { id: w.id, name: w.name, url: w.url, token: openWorkerToken(w.token) };
}

/** Registered workers: CRUD, admin breaker control (persisted), health polling. Tokens never leave. */
export class WorkerService {
  constructor(
    private readonly db: Database,
    private readonly breakers: BreakerRegistry,
    private readonly client: WorkerClient,
    private readonly allowedHosts: readonly string[],
    private readonly log: Logger,
  ) {}

  private view(w: Worker, inFlight: number) {
    const breaker = this.breakers.snapshot(w.id);
    return {
      id: w.id,
      name: w.name,
      url: w.url,
      capabilities: w.capabilities,
      maxConcurrency: w.maxConcurrency,
      enabled: w.enabled,
      source: w.source as "api" | "config",
      hasToken: w.token !== null,
      inFlight,
      breaker: { state: w.tripped ? ("tripped" as const) : breaker.state, since: breaker.since },
      tripped: w.tripped,
      health: w.health as "unknown" | "ok" | "degraded" | "down",
      healthCheckedAt: w.healthCheckedAt,
      lastError: w.lastError,
      lastErrorAt: w.lastErrorAt,
      createdAt: w.createdAt,
      updatedAt: w.updatedAt,
    };
  }

  private async inFlight(): Promise<Map<string, number>> {
    const rows = await this.db.prisma.attempt.groupBy({
      by: ["workerId"],
      where: { state: "running" },
      _count: { _all: true },
    });
    return new Map(rows.map((r) => [r.workerId ?? "", r._count._all]));
  }

  async list() {
    const [rows, counts] = await Promise.all([
      this.db.prisma.worker.findMany({ orderBy: { name: "asc" } }),
      this.inFlight(),
    ]);
    return rows.map((w) => this.view(w, counts.get(w.id) ?? 0));
  }

  async get(id: string) {
    const w = await this.db.prisma.worker.findUnique({ where: { id } });
    if (!w) throw notFound("Worker", id);
    const inFlight = await this.db.prisma.attempt.count({ where: { workerId: id, state: "running" } });
    return this.view(w, inFlight);
  }

  async register(input: WorkerInput, source: "api" | "config" = "api") {
    assertAllowedWorkerUrl(input.url, this.allowedHosts);
    const existing = await this.db.prisma.worker.findUnique({ where: { name: input.name }, select: { id: true } });
    if (existing) {
      throw new DomainError("CONFLICT", `A worker named ${input.name} exists already; update it or pick another name.`);
    }
    const w = await this.db.prisma.worker.create({
      data: {
        id: randomUUID(),
        name: input.name,
        url: input.url,
        capabilities: input.capabilities,
        maxConcurrency: input.maxConcurrency,
        token: sealWorkerToken(input.token),
        source,
      },
    });
    void this.checkHealth(w);
    return this.view(w, 0);
  }

  async update(id: string, patch: WorkerUpdate) {
    const current = await this.db.prisma.worker.findUnique({ where: { id } });
    if (!current) throw notFound("Worker", id);
    if (patch.url !== undefined) assertAllowedWorkerUrl(patch.url, this.allowedHosts);
    if (patch.name !== undefined && patch.name !== current.name) {
      const clash = await this.db.prisma.worker.findUnique({ where: { name: patch.name }, select: { id: true } });
      if (clash) throw new DomainError("CONFLICT", `A worker named ${patch.name} exists already.`);
    }
    const data: Prisma.WorkerUpdateInput = { updatedAt: new Date() };
    if (patch.name !== undefined) data.name = patch.name;
    if (patch.url !== undefined) data.url = patch.url;
    if (patch.capabilities !== undefined) data.capabilities = patch.capabilities;
    if (patch.maxConcurrency !== undefined) data.maxConcurrency = patch.maxConcurrency;
    if (patch.enabled !== undefined) data.enabled = patch.enabled;
    if (patch.token !== undefined) data.token = sealWorkerToken(patch.token);
    await this.db.prisma.worker.update({ where: { id }, data });
    return this.get(id);
  }

  async remove(id: string) {
    const w = await this.db.prisma.worker.findUnique({ where: { id } });
    if (!w) throw notFound("Worker", id);
    const running = await this.db.prisma.attempt.count({ where: { workerId: id, state: "running" } });
    if (running > 0) {
      throw new DomainError(
        "CONFLICT",
        `Worker ${w.name} is running ${running} attempt(s); disable it (update enabled: false), let them finish, then remove it.`,
      );
    }
    await this.db.prisma.worker.delete({ where: { id } });
    this.breakers.remove(id);
    return { id, removed: true as const };
  }

  /** Holds the breaker open until reset, also across restarts. */
  async trip(id: string) {
    const w = await this.db.prisma.worker
      .update({ where: { id }, data: { tripped: true, updatedAt: new Date() } })
      .catch(() => null);
    if (!w) throw notFound("Worker", id);
    this.breakers.trip(w.id, w.name);
    return this.get(id);
  }

  async reset(id: string) {
    const w = await this.db.prisma.worker
      .update({ where: { id }, data: { tripped: false, updatedAt: new Date() } })
      .catch(() => null);
    if (!w) throw notFound("Worker", id);
    this.breakers.reset(w.id, w.name);
    return this.get(id);
  }

  /** Workers from configuration: created, or brought in line with the configuration by name. */
  async upsertConfigWorkers(workers: WorkerInput[]): Promise<void> {
    for (const input of workers) {
      assertAllowedWorkerUrl(input.url, this.allowedHosts);
      const data = {
        url: input.url,
        capabilities: input.capabilities,
        maxConcurrency: input.maxConcurrency,
        token: sealWorkerToken(input.token),
        source: "config",
      };
      await this.db.prisma.worker.upsert({
        where: { name: input.name },
        create: { id: randomUUID(), name: input.name, ...data },
        update: { ...data, updatedAt: new Date() },
      });
    }
  }

  /** Breakers an admin tripped stay tripped after a restart. */
  async restoreTrippedBreakers(): Promise<void> {
    const tripped = await this.db.prisma.worker.findMany({
      where: { tripped: true },
      select: { id: true, name: true },
    });
    for (const w of tripped) this.breakers.trip(w.id, w.name);
  }

  async recordError(workerId: string, message: string): Promise<void> {
    await this.db.prisma.worker
      .updateMany({ where: { id: workerId }, data: { lastError: message.slice(0, 2000), lastErrorAt: new Date() } })
      .catch((err: unknown) => this.log.warn({ err }, "recording a worker error failed"));
  }

  async checkHealth(w: Worker): Promise<void> {
    let health: "ok" | "degraded" | "down";
    let error: string | null = null;
    try {
      const h = await this.client.health(toTarget(w));
      health = h.status;
    } catch (err) {
      health = "down";
      error = err instanceof WorkerCallError || err instanceof Error ? err.message : String(err);
    }
    await this.db.prisma.worker
      .updateMany({
        where: { id: w.id },
        data: {
          health,
          healthCheckedAt: new Date(),
          ...(error ? { lastError: `health check: ${error}`.slice(0, 2000), lastErrorAt: new Date() } : {}),
        },
      })
      .catch((err: unknown) => this.log.warn({ err }, "recording worker health failed"));
  }

  async pollHealth(): Promise<void> {
    const workers = await this.db.prisma.worker.findMany({ where: { enabled: true } });
    await Promise.all(workers.map((w) => this.checkHealth(w)));
  }

  /** Half-opens breakers whose cool-down is over and probes their workers' /health. */
  async probeOpenBreakers(): Promise<void> {
    const workers = await this.db.prisma.worker.findMany({ where: { enabled: true, tripped: false } });
    await Promise.all(
      workers
        .filter((w) => this.breakers.state(w.id) === "open")
        .map((w) =>
          this.breakers.probe(w.id, w.name, async () => {
            // Every probe failure must count, or cockatiel would take it as a success and close.
            const failed = (message: string) =>
              new WorkerCallError("http", message, { retryable: false, countsAgainstWorker: true });
            const h = await this.client.health(toTarget(w)).catch((err: Error) => {
              throw failed(err.message);
            });
            if (h.status !== "ok") throw failed(`Worker ${w.name} reports itself ${h.status}.`);
          }),
        ),
    );
  }
}

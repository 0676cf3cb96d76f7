import { randomUUID } from "node:crypto";
import { type ActivityRange, DISPATCH_STATES, type DispatchState } from "../../shared/worker-detail.js";
import { SANDBOX_STATES, type SandboxState } from "../../shared/worker-protocol.js";
import { NO_CAPABILITY_MESSAGE, type WorkerInput, type WorkerProtocol } from "../../shared/workers.js";
import type { AuditService } from "../audit/service.js";
import { type Caller, SYSTEM_ACTORS } from "../audit/trail.js";
import type { Database } from "../db/database.js";
import type { Prisma, Worker } from "../db/generated/client.js";
import { DomainError, notFound } from "../errors.js";
import { type CardSummary, cardSummary, skillCapabilities } from "../execution/a2a-mapping.js";
import { WorkerCallError } from "../execution/errors.js";
import type { WorkerClient, WorkerTarget } from "../execution/worker-client.js";
import { isSealed, type SecretBox } from "../keystore/secrets.js";
import type { Logger } from "../logger.js";
import { workerActivity, workerAttempts } from "./activity.js";
import { assertAllowedWorkerUrl } from "./allowlist.js";
import type { BreakerRegistry } from "./breakers.js";
import { WorkerHistory } from "./history.js";
import { openWorkerToken, sealWorkerToken } from "./token.js";

export type WorkerHealthState = "unknown" | "ok" | "degraded" | "down";

export type WorkerUpdate = Partial<Omit<WorkerInput, "token">> & {
  /** A new token; null removes it; absent keeps it. */
  token?: string | null;
  enabled?: boolean;
};

/**
 * Where and how to call a worker. The token stays in its stored (sealed) form: the WorkerClient opens
 * it only to write the Authorization header, so a clear token exists nowhere else in the process.
 */
export function toTarget(
  w: Pick<Worker, "id" | "name" | "url" | "token"> & { protocol?: string | null },
): WorkerTarget {
  return { id: w.id, name: w.name, url: w.url, token: w.token, protocol: w.protocol === "a2a" ? "a2a" : "v1" };
}

/** What the audit trail keeps of a worker: everything but its token, of which only whether there is one. */
function auditView(w: Worker) {
  return {
    name: w.name,
    url: w.url,
    capabilities: w.capabilities,
    maxConcurrency: w.maxConcurrency,
    enabled: w.enabled,
    tripped: w.tripped,
    source: w.source,
    protocol: w.protocol,
    hasToken: w.token !== null,
    dispatchState: w.dispatchState,
  };
}

const dispatchStateOf = (w: Pick<Worker, "dispatchState">): DispatchState =>
  (DISPATCH_STATES as readonly string[]).includes(w.dispatchState) ? (w.dispatchState as DispatchState) : "active";

/** Which dispatch states each admin action moves a worker from, and to. */
const DISPATCH_ACTIONS = {
  pause: { from: ["active", "draining", "drained"], to: "paused" },
  drain: { from: ["active", "paused"], to: "draining" },
  resume: { from: ["paused", "draining", "drained"], to: "active" },
} as const satisfies Record<string, { from: readonly DispatchState[]; to: DispatchState }>;
export type DispatchAction = keyof typeof DISPATCH_ACTIONS;

/** How long registering an A2A worker waits for its Agent Card. */
const REGISTRATION_CARD_TIMEOUT_MS = 15_000;

const protocolOf = (w: Pick<Worker, "protocol">): WorkerProtocol => (w.protocol === "a2a" ? "a2a" : "v1");

/** A stored card summary as the API gives it; null for a v1 worker or one whose card was never read. */
const storedCard = (w: Pick<Worker, "card">): CardSummary | null =>
  w.card && typeof w.card === "object" ? (w.card as unknown as CardSummary) : null;

/**
 * Registered workers: CRUD, admin breaker control (persisted), health polling. Tokens are sealed at
 * rest (SecretBox), opened only to call the worker, and never leave otherwise.
 */
export class WorkerService {
  /** Each worker's health as this process last checked it (pollHealth): what a refill reads without a query. */
  private readonly lastHealth = new Map<string, WorkerHealthState>();
  /** Told when a health check finds a worker down that was not (webhooks' worker.down). */
  onDown?: (w: Pick<Worker, "id" | "name" | "healthCheckedAt">, error: string) => void;
  /** The workers' history (worker_events): breaker and health changes, admins' actions. */
  readonly history: WorkerHistory;

  constructor(
    private readonly db: Database,
    private readonly breakers: BreakerRegistry,
    private readonly client: WorkerClient,
    private readonly allowedHosts: readonly string[],
    private readonly log: Logger,
    private readonly box: SecretBox,
    private readonly audit: AuditService,
  ) {
    this.history = new WorkerHistory(db, log);
  }

  private openToken(stored: string | null): string | null {
    return openWorkerToken(this.box, stored);
  }

  private view(w: Worker, inFlight: number) {
    this.breakers.sync(w.id, w.name, w.tripped);
    const breaker = this.breakers.snapshot(w.id);
    return {
      id: w.id,
      name: w.name,
      url: w.url,
      capabilities: w.capabilities,
      maxConcurrency: w.maxConcurrency,
      enabled: w.enabled,
      source: w.source as "api" | "config",
      protocol: protocolOf(w),
      /** An A2A worker's Agent Card as last read: name, skills, streaming, auth scheme, interfaces. */
      card: storedCard(w),
      cardFetchedAt: w.cardFetchedAt,
      /** The capabilities follow the card's skills (none were given). */
      capabilitiesFromCard: w.capsFromCard,
      hasToken: w.token !== null,
      inFlight,
      breaker,
      /** Calls within BREAKER_WINDOW_MS in this process: what dispatch weighs the worker by. */
      recent: this.breakers.recent(w.id),
      tripped: w.tripped,
      health: w.health as WorkerHealthState,
      healthCheckedAt: w.healthCheckedAt,
      sandbox: (SANDBOX_STATES as readonly string[]).includes(w.sandbox ?? "") ? (w.sandbox as SandboxState) : null,
      lastError: w.lastError,
      lastErrorAt: w.lastErrorAt,
      /** Whether dispatch sends it new attempts: an admin's pause or drain (persisted). */
      dispatch: {
        state: dispatchStateOf(w),
        reason: w.dispatchReason,
        changedBy: w.dispatchChangedBy,
        changedAt: w.dispatchChangedAt,
      },
      createdAt: w.createdAt,
      updatedAt: w.updatedAt,
    };
  }

  /** Every worker with its attempts in flight: one plain query, since live metrics read it every second. */
  async list() {
    const rows = await this.db.query<Worker & { inFlight: number; capabilities: string[] | null }>(
      `SELECT w.id, w.name, w.url, w.capabilities, w.max_concurrency AS "maxConcurrency", w.token, w.enabled,
              w.source, w.tripped, w.health, w.health_checked_at AS "healthCheckedAt", w.sandbox, w.last_error AS "lastError",
              w.last_error_at AS "lastErrorAt", w.created_at AS "createdAt", w.updated_at AS "updatedAt",
              w.protocol, w.card, w.card_fetched_at AS "cardFetchedAt", w.capabilities_from_card AS "capsFromCard",
              w.dispatch_state AS "dispatchState", w.dispatch_reason AS "dispatchReason",
              w.dispatch_changed_by AS "dispatchChangedBy", w.dispatch_changed_at AS "dispatchChangedAt",
              (SELECT count(*) FROM attempts a WHERE a.worker_id = w.id AND a.state = 'running')::int AS "inFlight"
         FROM workers w ORDER BY w.name`,
    );
    return rows.map(({ inFlight, ...w }) => this.view({ ...w, capabilities: w.capabilities ?? [] }, Number(inFlight)));
  }

  async get(id: string) {
    const w = await this.db.prisma.worker.findUnique({ where: { id } });
    if (!w) throw notFound("Worker", id);
    const inFlight = await this.db.prisma.attempt.count({ where: { workerId: id, state: "running" } });
    return this.view(w, inFlight);
  }

  async register(caller: Caller, input: WorkerInput) {
    assertAllowedWorkerUrl(input.url, this.allowedHosts);
    const protocol = input.protocol ?? "v1";
    const a2a = protocol === "a2a" ? await this.readCardForRegistration(input) : null;
    const w = await this.db.prisma.$transaction(async (tx) => {
      const existing = await tx.worker.findUnique({ where: { name: input.name }, select: { id: true } });
      if (existing) {
        throw new DomainError(
          "CONFLICT",
          `A worker named ${input.name} exists already; update it or pick another name.`,
        );
      }
      const created = await tx.worker.create({
        data: {
          id: randomUUID(),
          name: input.name,
          url: input.url,
          capabilities: a2a?.capabilities ?? input.capabilities,
          maxConcurrency: input.maxConcurrency,
          token: sealWorkerToken(this.box, input.token),
          source: "api",
          protocol,
          capsFromCard: a2a?.fromCard ?? false,
          ...(a2a?.card ? { card: a2a.card as unknown as Prisma.InputJsonValue, cardFetchedAt: new Date() } : {}),
          ...(a2a?.card ? { health: "ok", healthCheckedAt: new Date() } : {}),
        },
      });
      await this.audit.record(tx, {
        actor: caller.actor,
        action: "worker.register",
        resource: { type: "worker", id: created.id },
        after: auditView(created),
        ...(caller.client ? { client: caller.client } : {}),
      });
      return created;
    });
    void this.checkHealth(w);
    return this.view(w, 0);
  }

  async update(caller: Caller, id: string, patch: WorkerUpdate) {
    if (patch.url !== undefined) assertAllowedWorkerUrl(patch.url, this.allowedHosts);
    const updated = await this.db.prisma.$transaction(async (tx) => {
      const current = await tx.worker.findUnique({ where: { id } });
      if (!current) throw notFound("Worker", id);
      if (patch.name !== undefined && patch.name !== current.name) {
        const clash = await tx.worker.findUnique({ where: { name: patch.name }, select: { id: true } });
        if (clash) throw new DomainError("CONFLICT", `A worker named ${patch.name} exists already.`);
      }
      const data: Prisma.WorkerUpdateInput = { updatedAt: new Date() };
      if (patch.name !== undefined) data.name = patch.name;
      if (patch.url !== undefined) data.url = patch.url;
      const protocol = patch.protocol ?? protocolOf(current);
      if (patch.protocol !== undefined) data.protocol = patch.protocol;
      if (patch.capabilities !== undefined || patch.protocol !== undefined) {
        const capabilities = patch.capabilities ?? current.capabilities;
        if (protocol === "v1" && capabilities.length === 0) {
          throw new DomainError(
            "BAD_REQUEST",
            `${NO_CAPABILITY_MESSAGE}: a protocol v1 worker has no card to take them from.`,
          );
        }
        // An A2A worker given no capability follows its card's skills (read again right after this update).
        const fromCard =
          protocol === "a2a" &&
          (patch.capabilities !== undefined ? patch.capabilities.length === 0 : current.capsFromCard);
        if (!fromCard) data.capabilities = capabilities;
        data.capsFromCard = fromCard;
      }
      if (patch.maxConcurrency !== undefined) data.maxConcurrency = patch.maxConcurrency;
      if (patch.enabled !== undefined) data.enabled = patch.enabled;
      if (patch.token !== undefined) data.token = sealWorkerToken(this.box, patch.token);
      const updated = await tx.worker.update({ where: { id }, data });
      await this.audit.record(tx, {
        actor: caller.actor,
        action: "worker.update",
        resource: { type: "worker", id },
        before: auditView(current),
        // Whether the token changed is worth keeping; the token is not.
        after: { ...auditView(updated), ...(patch.token !== undefined ? { tokenChanged: true } : {}) },
        ...(caller.client ? { client: caller.client } : {}),
      });
      return updated;
    });
    // An A2A worker's card is read again now: a new URL or token, or capabilities that follow its skills.
    if (protocolOf(updated) === "a2a") await this.checkHealth(updated);
    return this.get(id);
  }

  async remove(caller: Caller, id: string) {
    await this.db.prisma.$transaction(async (tx) => {
      const w = await tx.worker.findUnique({ where: { id } });
      if (!w) throw notFound("Worker", id);
      const running = await tx.attempt.count({ where: { workerId: id, state: "running" } });
      if (running > 0) {
        throw new DomainError(
          "CONFLICT",
          `Worker ${w.name} is running ${running} attempt(s); disable it (update enabled: false), let them finish, then remove it.`,
        );
      }
      await tx.worker.delete({ where: { id } });
      await this.audit.record(tx, {
        actor: caller.actor,
        action: "worker.remove",
        resource: { type: "worker", id },
        before: auditView(w),
        ...(caller.client ? { client: caller.client } : {}),
      });
    });
    this.breakers.remove(id);
    this.lastHealth.delete(id);
    return { id, removed: true as const };
  }

  /** Holds the breaker open until reset, also across restarts. The reason is required (the router checks it). */
  async trip(caller: Caller, id: string, reason: string) {
    const w = await this.setTripped(caller, id, true, reason);
    this.breakers.trip(w.id, w.name);
    return this.get(id);
  }

  async reset(caller: Caller, id: string, reason?: string) {
    const w = await this.setTripped(caller, id, false, reason);
    this.breakers.reset(w.id, w.name);
    return this.get(id);
  }

  private setTripped(caller: Caller, id: string, tripped: boolean, reason: string | undefined): Promise<Worker> {
    return this.db.prisma.$transaction(async (tx) => {
      const current = await tx.worker.findUnique({ where: { id } });
      if (!current) throw notFound("Worker", id);
      const w = await tx.worker.update({ where: { id }, data: { tripped, updatedAt: new Date() } });
      const breaker = this.breakers.state(id);
      await this.audit.record(tx, {
        actor: caller.actor,
        action: tripped ? "worker.trip" : "worker.reset",
        resource: { type: "worker", id },
        before: { tripped: current.tripped, breaker },
        after: { tripped, ...(reason ? { reason } : {}) },
        ...(caller.client ? { client: caller.client } : {}),
      });
      await this.history.recordIn(tx, {
        workerId: id,
        kind: tripped ? "trip" : "reset",
        from: current.tripped ? "tripped" : breaker,
        to: tripped ? "tripped" : "closed",
        reason: reason || null,
        actor: caller.actor.id,
      });
      return w;
    });
  }

  /**
   * An admin's pause, drain or resume: the worker's dispatch state, persisted and audited with the reason.
   * Running attempts are left to finish; a drain with none running ends at once (drained).
   */
  async setDispatch(caller: Caller, id: string, action: DispatchAction, reason?: string) {
    const rule = DISPATCH_ACTIONS[action];
    await this.db.prisma.$transaction(async (tx) => {
      const [current] = await tx.$queryRawUnsafe<{ name: string; dispatch_state: string }[]>(
        `SELECT name, dispatch_state FROM workers WHERE id = $1::uuid FOR UPDATE`,
        id,
      );
      if (!current) throw notFound("Worker", id);
      const from = dispatchStateOf({ dispatchState: current.dispatch_state });
      if (!(rule.from as readonly DispatchState[]).includes(from)) {
        throw new DomainError(
          "CONFLICT",
          `Worker ${current.name} is ${from}; ${action} applies to a worker that is ${rule.from.join(" or ")}.`,
        );
      }
      await tx.worker.update({
        where: { id },
        data: {
          dispatchState: rule.to,
          dispatchReason: reason || null,
          dispatchChangedBy: caller.actor.id,
          dispatchChangedAt: new Date(),
          updatedAt: new Date(),
        },
      });
      await this.audit.record(tx, {
        actor: caller.actor,
        action: `worker.${action}`,
        resource: { type: "worker", id },
        before: { dispatchState: from },
        after: { dispatchState: rule.to, ...(reason ? { reason } : {}) },
        ...(caller.client ? { client: caller.client } : {}),
      });
      await this.history.recordIn(tx, {
        workerId: id,
        kind: action,
        from,
        to: rule.to,
        reason: reason || null,
        actor: caller.actor.id,
      });
    });
    if (rule.to === "draining") await this.settleDrains([id]);
    return this.get(id);
  }

  /**
   * Draining workers among `ids` with no running attempt left become `drained` (one history row each).
   * Fenced in the statement: a worker that still runs an attempt, or is no longer draining, is left as is.
   */
  async settleDrains(ids: string[]): Promise<string[]> {
    if (!ids.length) return [];
    const drained = await this.db.query<{ id: string }>(
      `UPDATE workers w SET dispatch_state = 'drained', dispatch_changed_at = now(), updated_at = now()
        WHERE w.id = ANY($1::uuid[]) AND w.dispatch_state = 'draining'
          AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.worker_id = w.id AND a.state = 'running')
        RETURNING w.id`,
      [ids],
    );
    for (const { id } of drained) {
      await this.history.record({
        workerId: id,
        kind: "drained",
        from: "draining",
        to: "drained",
        reason: "no attempt running any more",
      });
      this.log.info({ workerId: id }, "worker drained");
    }
    return drained.map((d) => d.id);
  }

  /** The attempts the worker ran, newest first. */
  attempts(id: string, limit: number, cursor: string | null | undefined) {
    return workerAttempts(this.db, id, limit, cursor);
  }

  /** Its ended attempts over time: count, failed share, p50/p95 run time per bucket. */
  activity(id: string, range: ActivityRange) {
    return workerActivity(this.db, id, range);
  }

  /** Its history, newest first. */
  async historyOf(id: string, limit: number, cursor: string | null | undefined) {
    const exists = await this.db.prisma.worker.findUnique({ where: { id }, select: { id: true } });
    if (!exists) throw notFound("Worker", id);
    return this.history.list(id, limit, cursor);
  }

  /**
   * Workers from configuration: created, or brought in line with the configuration by name. Only a
   * real difference is written (and audited), so a restart with the same configuration changes nothing.
   */
  async upsertConfigWorkers(workers: WorkerInput[]): Promise<void> {
    for (const input of workers) {
      assertAllowedWorkerUrl(input.url, this.allowedHosts);
      await this.db.prisma.$transaction(async (tx) => {
        const current = await tx.worker.findUnique({ where: { name: input.name } });
        const token = input.token ?? null;
        if (
          current &&
          current.url === input.url &&
          current.maxConcurrency === input.maxConcurrency &&
          current.source === "config" &&
          current.protocol === (input.protocol ?? "v1") &&
          (current.capsFromCard || current.capabilities.join("\n") === input.capabilities.join("\n")) &&
          current.capsFromCard === (input.protocol === "a2a" && input.capabilities.length === 0) &&
          this.openToken(current.token) === token &&
          (current.token === null || isSealed(current.token))
        ) {
          return;
        }
        const fromCard = input.protocol === "a2a" && input.capabilities.length === 0;
        const data = {
          url: input.url,
          // Following the card: kept as last read until the next health check reads the card again.
          capabilities: fromCard && current?.capsFromCard ? current.capabilities : input.capabilities,
          maxConcurrency: input.maxConcurrency,
          token: sealWorkerToken(this.box, token),
          source: "config",
          protocol: input.protocol ?? "v1",
          capsFromCard: fromCard,
        };
        const w = current
          ? await tx.worker.update({ where: { id: current.id }, data: { ...data, updatedAt: new Date() } })
          : await tx.worker.create({ data: { id: randomUUID(), name: input.name, ...data } });
        await this.audit.record(tx, {
          actor: SYSTEM_ACTORS.config,
          action: current ? "worker.update" : "worker.register",
          resource: { type: "worker", id: w.id },
          before: current ? auditView(current) : null,
          after: auditView(w),
        });
      });
    }
  }

  /**
   * Seals tokens stored in clear by a version from before tokens were sealed. Idempotent; run at
   * start, before anything reads them.
   */
  async sealPlainTokens(): Promise<number> {
    const rows = await this.db.prisma.worker.findMany({
      where: { token: { not: null } },
      select: { id: true, token: true },
    });
    let sealed = 0;
    for (const r of rows) {
      if (!r.token || isSealed(r.token)) continue;
      await this.db.prisma.$transaction(async (tx) => {
        await tx.worker.update({ where: { id: r.id }, data: { token: sealWorkerToken(this.box, r.token) } });
        await this.audit.record(tx, {
          actor: SYSTEM_ACTORS.config,
          action: "worker.seal_token",
          resource: { type: "worker", id: r.id },
          after: { tokenSealed: true },
        });
      });
      sealed++;
    }
    if (sealed) this.log.info({ workers: sealed }, "sealed worker tokens that were stored in clear");
    return sealed;
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
    // Kept as last seen while the worker is down: it says how it runs scripts when it comes back.
    let sandbox: SandboxState | null | undefined;
    try {
      if (protocolOf(w) === "a2a") {
        await this.refreshCard(w);
        health = "ok";
      } else {
        const h = await this.client.health(toTarget(w));
        health = h.status;
        sandbox = h.sandbox ?? null;
      }
    } catch (err) {
      health = "down";
      error = err instanceof WorkerCallError || err instanceof Error ? err.message : String(err);
    }
    this.lastHealth.set(w.id, health);
    if (health === "down" && w.health !== "down") this.onDown?.(w, error ?? "health check failed");
    await this.recordHealthChange(w.id, health, error);
    await this.db.prisma.worker
      .updateMany({
        where: { id: w.id },
        data: {
          health,
          healthCheckedAt: new Date(),
          ...(sandbox !== undefined ? { sandbox } : {}),
          ...(error ? { lastError: `health check: ${error}`.slice(0, 2000), lastErrorAt: new Date() } : {}),
        },
      })
      .catch((err: unknown) => this.log.warn({ err }, "recording worker health failed"));
  }

  /**
   * Writes the new health and, when it changed, a history row. The row is locked while its old value is read, so
   * overlapping checks (a registration's and a poll's, another process's) record one change once. A first check
   * that finds the worker well is no change worth a row.
   */
  private async recordHealthChange(workerId: string, health: string, error: string | null): Promise<void> {
    const changed = await this.db
      .query<{ old: string }>(
        `UPDATE workers w SET health = $2
           FROM (SELECT id, health AS old FROM workers WHERE id = $1::uuid FOR UPDATE) o
          WHERE w.id = o.id AND o.old IS DISTINCT FROM $2
          RETURNING o.old`,
        [workerId, health],
      )
      .catch((err: unknown) => {
        this.log.warn({ err }, "recording worker health failed");
        return [];
      });
    const from = changed[0]?.old;
    if (from === undefined || (from === "unknown" && health === "ok")) return;
    await this.history.record({ workerId, kind: "health", from, to: health, reason: error });
  }

  /**
   * An A2A worker's card at registration: its skills are the capabilities when none were given. A card that
   * cannot be read refuses the registration only when the capabilities were to come from it.
   */
  private async readCardForRegistration(
    input: WorkerInput,
  ): Promise<{ card: CardSummary | null; capabilities: string[]; fromCard: boolean }> {
    const fromCard = input.capabilities.length === 0;
    const target = {
      id: `registering:${input.name}`,
      name: input.name,
      url: input.url,
      token: null,
      protocol: "a2a" as const,
    };
    try {
      // An admin waits for this answer: longer than a health check's timeout, so a busy agent is not refused.
      const card = await this.client.a2a.card(
        input.token ? { ...target, token: sealWorkerToken(this.box, input.token) } : target,
        undefined,
        REGISTRATION_CARD_TIMEOUT_MS,
      );
      const skills = skillCapabilities(card);
      if (fromCard && skills.length === 0) {
        throw new DomainError(
          "BAD_REQUEST",
          `The Agent Card of ${input.name} lists no skill to take capabilities from; give the worker its capabilities.`,
        );
      }
      return { card: cardSummary(card), capabilities: fromCard ? skills : input.capabilities, fromCard };
    } catch (err) {
      if (err instanceof DomainError || fromCard) {
        if (err instanceof DomainError) throw err;
        throw new DomainError(
          "BAD_REQUEST",
          `Could not read the Agent Card of ${input.name}: ${(err as Error).message} Give the worker its capabilities to register it anyway.`,
        );
      }
      return { card: null, capabilities: input.capabilities, fromCard: false };
    }
  }

  /** Reads an A2A worker's card again: kept for the console, and its skills as capabilities when it follows them. */
  private async refreshCard(w: Worker): Promise<void> {
    const card = await this.client.a2a.card(toTarget(w));
    const skills = skillCapabilities(card);
    await this.db.prisma.worker.updateMany({
      where: { id: w.id },
      data: {
        card: cardSummary(card) as unknown as Prisma.InputJsonValue,
        cardFetchedAt: new Date(),
        ...(w.capsFromCard && skills.length ? { capabilities: skills } : {}),
      },
    });
  }

  /** The worker's health as this process last saw it; "unknown" before its first check here. */
  healthOf(workerId: string): WorkerHealthState {
    return this.lastHealth.get(workerId) ?? "unknown";
  }

  async pollHealth(): Promise<void> {
    const workers = await this.db.prisma.worker.findMany({ where: { enabled: true } });
    await Promise.all(workers.map((w) => this.checkHealth(w)));
  }

  /** Half-opens breakers whose cool-down is over and probes their workers' /health. */
  async probeOpenBreakers(): Promise<void> {
    // Runs several times a second: no database read unless a breaker here is open.
    if (!this.breakers.anyOpen()) return;
    const workers = await this.db.prisma.worker.findMany({ where: { enabled: true, tripped: false } });
    await Promise.all(
      workers
        .filter((w) => this.breakers.state(w.id) === "open")
        .map((w) =>
          this.breakers.probe(w.id, w.name, async () => {
            // Every probe failure must count, or cockatiel would take it as a success and close.
            const failed = (message: string) =>
              new WorkerCallError("http", message, { retryable: false, countsAgainstWorker: true });
            if (protocolOf(w) === "a2a") {
              await this.client.a2a.card(toTarget(w)).catch((err: Error) => {
                throw failed(err.message);
              });
              return;
            }
            const h = await this.client.health(toTarget(w)).catch((err: Error) => {
              throw failed(err.message);
            });
            if (h.status !== "ok") throw failed(`Worker ${w.name} reports itself ${h.status}.`);
          }),
        ),
    );
  }
}

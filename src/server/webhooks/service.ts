import { randomUUID } from "node:crypto";
import {
  TASK_STATE_EVENTS,
  WEBHOOK_TEST_EVENT,
  type WebhookCreateInput,
  type WebhookDeliveryStatus,
  type WebhookEventType,
  type WebhookFormat,
  type WebhookPatch,
} from "../../shared/webhooks.js";
import type { AuditService } from "../audit/service.js";
import type { Caller } from "../audit/trail.js";
import type { Database } from "../db/database.js";
import type { Prisma, WebhookDelivery, WebhookEndpoint } from "../db/generated/client.js";
import type { UnitOfWorkRunner } from "../db/unit-of-work.js";
import { DomainError, notFound } from "../errors.js";
import type { SecretBox } from "../keystore/secrets.js";
import type { Logger } from "../logger.js";
import type { LogReport } from "../provenance/log.js";
import { assertAllowedWorkerUrl } from "../workers/allowlist.js";
import type { BreakerChange } from "../workers/breakers.js";
import { type DelivererOptions, type DeliveryOutcome, WebhookDeliverer } from "./deliverer.js";
import { enqueueEvent } from "./outbox.js";
import { consoleLink, type WebhookPayload, workerPayload } from "./payload.js";
import { generateWebhookSecret, sealWebhookSecret } from "./signing.js";

/** What the API gives of an endpoint: everything but its secret. */
function endpointView(e: WebhookEndpoint, counts?: { pending: number; failed: number; delivered: number }) {
  return {
    id: e.id,
    name: e.name,
    url: e.url,
    events: e.events as WebhookEventType[],
    format: e.format as WebhookFormat,
    enabled: e.enabled,
    disabledReason: e.disabledReason,
    createdBy: e.createdBy,
    createdAt: e.createdAt,
    updatedAt: e.updatedAt,
    deliveries: counts ?? { pending: 0, failed: 0, delivered: 0 },
  };
}

/** What the audit trail keeps of an endpoint: never its secret. */
const auditView = (e: WebhookEndpoint) => ({
  name: e.name,
  url: e.url,
  events: e.events,
  format: e.format,
  enabled: e.enabled,
});

function deliveryView(d: WebhookDelivery) {
  return {
    id: d.id,
    endpointId: d.endpointId,
    eventId: d.eventId,
    eventType: d.eventType,
    payload: d.payload as unknown as WebhookPayload,
    status: d.status as WebhookDeliveryStatus,
    attempts: d.attempts,
    /** When the next try is due; null once delivered or failed. */
    nextAttemptAt: d.status === "pending" || d.status === "delivering" ? d.nextAttemptAt : null,
    responseStatus: d.responseStatus,
    responseBody: d.responseBody,
    error: d.error,
    durationMs: d.durationMs,
    deliveredAt: d.deliveredAt,
    replayOf: d.replayOf,
    createdAt: d.createdAt,
    updatedAt: d.updatedAt,
  };
}

export type WebhookEndpointView = ReturnType<typeof endpointView>;

/**
 * Webhook endpoints (CRUD, secrets sealed and shown once), the delivery log, replays and test events,
 * and the event sources: task state changes (through the outbox's cursor), breaker changes, workers
 * found down, a provenance verification that failed.
 */
export class WebhookService {
  private readonly deliverer: WebhookDeliverer;

  constructor(
    private readonly db: Database,
    private readonly box: SecretBox,
    private readonly audit: AuditService,
    private readonly log: Logger,
    private readonly opts: DelivererOptions,
    units: UnitOfWorkRunner,
    counted: (outcome: DeliveryOutcome) => void,
  ) {
    this.deliverer = new WebhookDeliverer(db, box, log, opts, counted);
    // A state change that is a webhook event is turned into deliveries right after its commit, not at the next poll.
    units.onCommit((unit) => {
      if (unit.events.some((e) => e.toState && e.toState in TASK_STATE_EVENTS)) this.deliverer.wake();
    });
  }

  start(): void {
    this.deliverer.start();
  }

  stop(): Promise<void> {
    return this.deliverer.stop();
  }

  private checkUrl(url: string): void {
    assertAllowedWorkerUrl(url, this.opts.allowedHosts, "Webhook");
  }

  async list() {
    const [endpoints, counts] = await Promise.all([
      this.db.prisma.webhookEndpoint.findMany({ orderBy: { name: "asc" } }),
      this.db.query<{ endpoint_id: string; status: string; n: number }>(
        `SELECT endpoint_id, status, count(*)::int AS n FROM webhook_deliveries GROUP BY endpoint_id, status`,
      ),
    ]);
    return endpoints.map((e) => {
      const of = (status: string) =>
        counts.filter((c) => c.endpoint_id === e.id && c.status === status).reduce((sum, c) => sum + Number(c.n), 0);
      return endpointView(e, {
        pending: of("pending") + of("delivering"),
        failed: of("failed"),
        delivered: of("delivered"),
      });
    });
  }

  async get(id: string) {
    const e = await this.db.prisma.webhookEndpoint.findUnique({ where: { id } });
    if (!e) throw notFound("Webhook", id);
    return endpointView(e);
  }

  /** Registers an endpoint; the signing secret is in this answer and never again. */
  async create(caller: Caller, input: WebhookCreateInput) {
    this.checkUrl(input.url);
    const secret = generateWebhookSecret();
    const created = await this.db.prisma.$transaction(async (tx) => {
      const clash = await tx.webhookEndpoint.findUnique({ where: { name: input.name }, select: { id: true } });
      if (clash) throw new DomainError("CONFLICT", `A webhook named ${input.name} exists already; pick another name.`);
      const e = await tx.webhookEndpoint.create({
        data: {
          id: randomUUID(),
          name: input.name,
          url: input.url,
          events: input.events,
          format: input.format,
          secret: sealWebhookSecret(this.box, secret),
          createdBy: caller.actor.id,
        },
      });
      await this.audit.record(tx, {
        actor: caller.actor,
        action: "webhook.create",
        resource: { type: "webhook", id: e.id },
        after: auditView(e),
        ...(caller.client ? { client: caller.client } : {}),
      });
      return e;
    });
    return { endpoint: endpointView(created), secret };
  }

  async update(caller: Caller, id: string, patch: WebhookPatch) {
    if (patch.url !== undefined) this.checkUrl(patch.url);
    const updated = await this.db.prisma.$transaction(async (tx) => {
      const current = await tx.webhookEndpoint.findUnique({ where: { id } });
      if (!current) throw notFound("Webhook", id);
      if (patch.name !== undefined && patch.name !== current.name) {
        const clash = await tx.webhookEndpoint.findUnique({ where: { name: patch.name }, select: { id: true } });
        if (clash) throw new DomainError("CONFLICT", `A webhook named ${patch.name} exists already.`);
      }
      const data: Prisma.WebhookEndpointUpdateInput = { updatedAt: new Date() };
      if (patch.name !== undefined) data.name = patch.name;
      if (patch.url !== undefined) data.url = patch.url;
      if (patch.events !== undefined) data.events = patch.events;
      if (patch.format !== undefined) data.format = patch.format;
      if (patch.enabled !== undefined) {
        data.enabled = patch.enabled;
        if (patch.enabled) data.disabledReason = null;
      }
      const e = await tx.webhookEndpoint.update({ where: { id }, data });
      await this.audit.record(tx, {
        actor: caller.actor,
        action: "webhook.update",
        resource: { type: "webhook", id },
        before: auditView(current),
        after: auditView(e),
        ...(caller.client ? { client: caller.client } : {}),
      });
      return e;
    });
    // Deliveries held while it was disabled are due now.
    if (patch.enabled) this.deliverer.wake();
    return endpointView(updated);
  }

  async remove(caller: Caller, id: string) {
    await this.db.prisma.$transaction(async (tx) => {
      const e = await tx.webhookEndpoint.findUnique({ where: { id } });
      if (!e) throw notFound("Webhook", id);
      await tx.webhookEndpoint.delete({ where: { id } });
      await this.audit.record(tx, {
        actor: caller.actor,
        action: "webhook.delete",
        resource: { type: "webhook", id },
        before: auditView(e),
        ...(caller.client ? { client: caller.client } : {}),
      });
    });
    return { id, removed: true as const };
  }

  /** A new signing secret, in this answer only; the old one stops signing at once. */
  async rotateSecret(caller: Caller, id: string) {
    const secret = generateWebhookSecret();
    const e = await this.db.prisma.$transaction(async (tx) => {
      const current = await tx.webhookEndpoint.findUnique({ where: { id }, select: { id: true } });
      if (!current) throw notFound("Webhook", id);
      const e = await tx.webhookEndpoint.update({
        where: { id },
        data: { secret: sealWebhookSecret(this.box, secret), updatedAt: new Date() },
      });
      await this.audit.record(tx, {
        actor: caller.actor,
        action: "webhook.rotate_secret",
        resource: { type: "webhook", id },
        after: { secretRotated: true },
        ...(caller.client ? { client: caller.client } : {}),
      });
      return e;
    });
    return { endpoint: endpointView(e), secret };
  }

  /** The endpoint's deliveries, newest first; `cursor`: the `nextCursor` of the previous page. */
  async deliveries(input: { endpointId: string; cursor?: string; limit: number }) {
    await this.get(input.endpointId);
    const rows = await this.db.prisma.webhookDelivery.findMany({
      where: { endpointId: input.endpointId },
      orderBy: [{ createdAt: "desc" }, { id: "desc" }],
      take: input.limit + 1,
      ...(input.cursor ? { cursor: { id: input.cursor }, skip: 1 } : {}),
    });
    const items = rows.slice(0, input.limit).map(deliveryView);
    return { items, nextCursor: rows.length > input.limit ? (items[items.length - 1]?.id ?? null) : null };
  }

  /** Sends a delivery's event again, as a new delivery (same webhook-id, so a receiver can tell). */
  async replay(caller: Caller, deliveryId: string) {
    const id = await this.db.prisma.$transaction(async (tx) => {
      const d = await tx.webhookDelivery.findUnique({ where: { id: deliveryId } });
      if (!d) throw notFound("Webhook delivery", deliveryId);
      const newId = randomUUID();
      await tx.webhookDelivery.create({
        data: {
          id: newId,
          endpointId: d.endpointId,
          eventId: d.eventId,
          eventType: d.eventType,
          payload: d.payload as Prisma.InputJsonValue,
          replayOf: d.replayOf ?? d.id,
        },
      });
      await this.audit.record(tx, {
        actor: caller.actor,
        action: "webhook.replay",
        resource: { type: "webhook", id: d.endpointId },
        after: { delivery: d.id, replay: newId, event: d.eventId, type: d.eventType },
        ...(caller.client ? { client: caller.client } : {}),
      });
      return newId;
    });
    this.deliverer.wake();
    return deliveryView(await this.db.prisma.webhookDelivery.findUniqueOrThrow({ where: { id } }));
  }

  /** A `webhook.test` delivery to this endpoint, whatever its filter: what an admin checks a receiver with. */
  async sendTest(caller: Caller, endpointId: string) {
    const e = await this.db.prisma.webhookEndpoint.findUnique({ where: { id: endpointId } });
    if (!e) throw notFound("Webhook", endpointId);
    const eventId = `test_${randomUUID()}`;
    const payload: WebhookPayload = {
      type: WEBHOOK_TEST_EVENT,
      timestamp: new Date().toISOString(),
      data: {
        endpointId: e.id,
        endpoint: e.name,
        message: `A test event sent by ${caller.actor.id}.`,
        ...(consoleLink(this.opts.publicUrl, `admin/webhooks/${e.id}`)
          ? { url: consoleLink(this.opts.publicUrl, `admin/webhooks/${e.id}`) }
          : {}),
      },
    };
    await this.db.prisma.$transaction(async (tx) => {
      await tx.webhookDelivery.create({
        data: {
          id: randomUUID(),
          endpointId: e.id,
          eventId,
          eventType: payload.type,
          payload: payload as unknown as Prisma.InputJsonValue,
        },
      });
      await this.audit.record(tx, {
        actor: caller.actor,
        action: "webhook.test",
        resource: { type: "webhook", id: e.id },
        after: { event: eventId },
        ...(caller.client ? { client: caller.client } : {}),
      });
    });
    this.deliverer.wake();
    const d = await this.db.prisma.webhookDelivery.findFirstOrThrow({ where: { endpointId: e.id, eventId } });
    return deliveryView(d);
  }

  /** An event from outside the task log: one delivery per subscribed endpoint. Never throws (called from callbacks). */
  private emit(eventId: string, payload: WebhookPayload): void {
    enqueueEvent(this.db, eventId, payload)
      .then((n) => {
        if (n) this.deliverer.wake();
      })
      .catch((err: unknown) => this.log.error({ err, event: payload.type }, "queuing a webhook event failed"));
  }

  /** A worker's circuit breaker opened (by failures, or an admin's trip) or closed; half-open is a step, not news. */
  breakerChanged(c: BreakerChange): void {
    const type =
      (c.to === "open" || c.to === "tripped") && c.from !== "open" && c.from !== "tripped"
        ? "worker.breaker_opened"
        : c.to === "closed"
          ? "worker.breaker_closed"
          : null;
    if (!type) return;
    this.emit(
      `worker_breaker_${randomUUID()}`,
      workerPayload(
        type,
        { id: c.workerId, name: c.workerName, reason: c.reason, from: c.from, to: c.to },
        this.opts.publicUrl,
      ),
    );
  }

  /**
   * A health check found a worker down that was not. The event id is the worker and the check it
   * followed, so processes that saw the same change make one delivery of it.
   */
  workerDown(w: { id: string; name: string; healthCheckedAt: Date | null }, error: string): void {
    this.emit(
      `worker_down_${w.id}_${w.healthCheckedAt?.getTime() ?? 0}`,
      workerPayload("worker.down", { id: w.id, name: w.name, reason: error }, this.opts.publicUrl),
    );
  }

  /** A verification of the provenance log found it not intact. */
  provenanceVerificationFailed(report: LogReport): void {
    const first = report.firstBad ?? report.findings[0] ?? null;
    this.emit(`provenance_${randomUUID()}`, {
      type: "provenance.verification_failed",
      timestamp: new Date().toISOString(),
      data: {
        checked: report.checked,
        size: report.size,
        findings: report.findings.length,
        reason: first
          ? `${first.problem}${first.seq ? ` at record ${first.seq}` : ""}: ${first.reason}`.slice(0, 2000)
          : "The log did not verify.",
        ...(consoleLink(this.opts.publicUrl, "audit") ? { url: consoleLink(this.opts.publicUrl, "audit") } : {}),
      },
    });
  }
}

import type { WorkerInput } from "../shared/workers.js";
import type { AuditService } from "./audit/service.js";
import { Trail } from "./audit/trail.js";
import type { AuthService } from "./auth/service.js";
import { createTrustServices, type TrustServices } from "./auth/trust-services.js";
import { Assistant } from "./chat/assistant.js";
import { ChatService } from "./chat/service.js";
import { relayCredentialChanges } from "./cluster/credentials-relay.js";
import { LiveBus } from "./cluster/live-bus.js";
import { type Config, loadConfig } from "./config.js";
import { configureCouncil } from "./council/council.js";
import type { Database } from "./db/database.js";
import { UnitOfWorkRunner } from "./db/unit-of-work.js";
import { TaskEventHub } from "./events/task-event-hub.js";
import { A2AAttempts } from "./execution/a2a-attempts.js";
import { ExecutionEngine } from "./execution/engine.js";
import { EventWriter } from "./execution/event-writer.js";
import { WorkerClient } from "./execution/worker-client.js";
import type { Logger } from "./logger.js";
import { MetricsService } from "./metrics/service.js";
import type { ProvenanceService } from "./provenance/service.js";
import { SystemService } from "./system/service.js";
import { ApprovalService } from "./tasks/approvals.js";
import { TaskService } from "./tasks/service.js";
import { ViewService } from "./views/service.js";
import { WebhookService } from "./webhooks/service.js";
import { type BreakerChange, BreakerRegistry } from "./workers/breakers.js";
import { parseConfigWorkers } from "./workers/config-workers.js";
import { WorkerService } from "./workers/service.js";

export interface Services {
  db: Database;
  hub: TaskEventHub;
  /** LISTEN/NOTIFY between the processes sharing the database. */
  bus: LiveBus;
  tasks: TaskService;
  /** Human approval by risk tier: tasks.approve / tasks.reject and the approval queue. */
  approvals: ApprovalService;
  views: ViewService;
  system: SystemService;
  workers: WorkerService;
  execution: ExecutionEngine;
  /** Audit trail: `record(tx, …)` inside the transaction of every change. */
  audit: AuditService;
  /** Provenance chain: `append(tx, …)` for every decision, before the task events. */
  provenance: ProvenanceService;
  auth: AuthService;
  /** Keystore, sealed secrets (`secretBox.seal/open`), and the above. */
  trust: TrustServices;
  /** Live task metrics, rollups and the Prometheus exposition. */
  metrics: MetricsService;
  /** Attempts on A2A workers: the agent's task ids, its open questions and the operators' answers. */
  a2a: A2AAttempts;
  /** Chat sessions, messages and the assistant. */
  chat: ChatService;
  /** Webhook endpoints, their delivery outbox and the delivery loop. */
  webhooks: WebhookService;
  /** Registers the configured workers (and `extra` ones) and starts dispatch, lease recovery and health polling. */
  start(extra?: WorkerInput[]): Promise<void>;
  /** Stops them, handing running attempts back to the queue. Does not close the database. */
  stop(): Promise<void>;
}

/** How often hubs look for other processes' rows even without a notification. */
const SAFETY_POLL_MS = 5_000;

export async function createServices(db: Database, log: Logger, config: Config = loadConfig({})): Promise<Services> {
  const trust = await createTrustServices(db, config, log);
  // On a Postgres server other processes may write too: their commits arrive through the bus
  // (NOTIFY from triggers), with a slow poll as the safety net should a notification be lost.
  const multiProcess = db.kind === "postgres";
  const bus = new LiveBus(db, log);
  await bus.start();
  const hub = new TaskEventHub(db, log, multiProcess ? SAFETY_POLL_MS : 0);
  await hub.start();
  if (multiProcess) hub.follow(bus);
  const stopRelay = multiProcess ? relayCredentialChanges(bus, trust.auth.changes, log) : () => undefined;
  const events = new EventWriter(db, hub, log);

  let workers: WorkerService | undefined;
  let webhooks: WebhookService | undefined;
  const onBreakerChange = (c: BreakerChange) => {
    webhooks?.breakerChanged(c);
    log.warn({ worker: c.workerName, from: c.from, to: c.to, reason: c.reason }, "worker circuit breaker changed");
    if (c.to === "open") void workers?.recordError(c.workerId, `circuit breaker opened: ${c.reason}`);
    void workers?.history.recordBreakerChange(c);
    if (c.taskId) {
      events.append({
        taskId: c.taskId,
        type: "worker_breaker",
        actor: "system",
        data: { workerId: c.workerId, worker: c.workerName, from: c.from, to: c.to, reason: c.reason.slice(0, 2000) },
      });
    }
  };
  const breakers = new BreakerRegistry(
    {
      failures: config.BREAKER_FAILURES,
      windowMs: config.BREAKER_WINDOW_MS,
      halfOpenAfterMs: config.BREAKER_HALF_OPEN_AFTER_MS,
      closeAfterSuccesses: config.BREAKER_CLOSE_AFTER_SUCCESSES,
    },
    onBreakerChange,
  );
  const client = new WorkerClient(
    {
      allowedHosts: config.WORKER_ALLOWED_HOSTS,
      retryBaseDelayMs: config.RETRY_BASE_DELAY_MS,
      retryMaxDelayMs: config.RETRY_MAX_DELAY_MS,
      cancelTimeoutMs: config.CANCEL_TIMEOUT_MS,
      healthTimeoutMs: config.WORKER_HEALTH_TIMEOUT_MS,
      maxResponseBytes: config.WORKER_MAX_RESPONSE_BYTES,
      maxArtifactBytes: config.WORKER_MAX_ARTIFACT_BYTES,
      maxArtifacts: config.WORKER_MAX_ARTIFACTS,
      a2aPollIntervalMs: config.A2A_POLL_INTERVAL_MS,
    },
    breakers,
    trust.secretBox,
  );
  // Every state change is a unit of work: its rows, audit entries, provenance records and events in one transaction.
  const units = new UnitOfWorkRunner(new Trail(trust.audit, trust.provenance));
  const a2a = new A2AAttempts(db, events, units);
  client.a2a.attachAttempts(a2a);
  workers = new WorkerService(db, breakers, client, config.WORKER_ALLOWED_HOSTS, log, trust.secretBox, trust.audit);
  configureCouncil({ threads: config.COUNCIL_THREADS, timeoutMs: config.COUNCIL_TIMEOUT_MS, log });
  const execution = new ExecutionEngine(
    db,
    log,
    workers,
    breakers,
    client,
    events,
    {
      leaseMs: config.LEASE_MS,
      dispatchIntervalMs: config.DISPATCH_INTERVAL_MS,
      recoveryIntervalMs: config.RECOVERY_INTERVAL_MS,
      healthIntervalMs: config.WORKER_HEALTH_INTERVAL_MS,
      maxAutoRedispatch: config.MAX_AUTO_REDISPATCH,
      shutdownGraceMs: config.SHUTDOWN_GRACE_MS,
      recoveryLimit: config.RECOVERY_LIMIT,
      retryPolicy: config.retryPolicy,
      approvalPolicy: config.approvalPolicy,
    },
    units,
  );
  // After every commit: the live views hear of new events, the dispatcher of newly queued tasks.
  units.onCommit((unit) => {
    if (unit.events.length) hub.notify();
    if (unit.events.some((e) => e.toState === "queued")) execution.wake();
  });
  const workerService = workers;
  const metrics = new MetricsService(db, hub, workerService, log, {
    intervalMs: config.METRICS_INTERVAL_MS,
    windowMs: config.METRICS_WINDOW_MS,
    retentionDays: config.METRICS_RETENTION_DAYS,
  });
  const webhookService = new WebhookService(
    db,
    trust.secretBox,
    trust.audit,
    log,
    {
      timeoutMs: config.WEBHOOK_TIMEOUT_MS,
      maxAttempts: config.WEBHOOK_MAX_ATTEMPTS,
      retryBaseDelayMs: config.WEBHOOK_RETRY_BASE_DELAY_MS,
      retryMaxDelayMs: config.WEBHOOK_RETRY_MAX_DELAY_MS,
      pollIntervalMs: config.WEBHOOK_POLL_INTERVAL_MS,
      allowedHosts: config.WORKER_ALLOWED_HOSTS,
      publicUrl: config.PUBLIC_URL,
    },
    units,
    (outcome) => metrics.prom.webhookDelivery(outcome),
  );
  webhooks = webhookService;
  workerService.onDown = (w, error) => webhookService.workerDown(w, error);
  trust.provenance.onVerifyFailed = (report) => webhookService.provenanceVerificationFailed(report);
  const tasks = new TaskService(db, execution, units, config.MAX_AUTO_REDISPATCH);
  const approvals = new ApprovalService(db, units, config.approvalPolicy);
  const chat = new ChatService(
    db,
    log,
    new Assistant({
      db,
      tasks,
      metrics,
      client,
      answer: (caller, taskId, text) => a2a.answer(caller, taskId, text),
      approvals: {
        approve: (actor, id, note) => approvals.approve(actor, id, note),
        reject: (actor, id, note) => approvals.reject(actor, id, note),
      },
      breakerOf: async (id) => breakers.state(id),
      workerTimeoutMs: config.CHAT_WORKER_TIMEOUT_MS,
    }),
    bus,
    {
      messagesPerMinute: config.CHAT_MESSAGES_PER_MINUTE,
      pollMs: multiProcess ? SAFETY_POLL_MS : 0,
      followBus: multiProcess,
    },
  );
  return {
    db,
    hub,
    bus,
    tasks,
    approvals,
    views: new ViewService(db, trust.audit),
    system: new SystemService(db, workerService, config.retryPolicy, config.approvalPolicy),
    workers: workerService,
    execution,
    audit: trust.audit,
    provenance: trust.provenance,
    auth: trust.auth,
    trust,
    metrics,
    chat,
    a2a,
    webhooks: webhookService,
    async start(extra = []) {
      await workerService.sealPlainTokens();
      await workerService.upsertConfigWorkers([...parseConfigWorkers(config.WORKERS), ...extra]);
      if (config.EXECUTION_ENABLED) await execution.start();
      await metrics.start();
      webhookService.start();
    },
    async stop() {
      await execution.stop();
      await webhookService.stop();
      await metrics.stop();
      await chat.stop();
      hub.stop();
      stopRelay();
      await bus.stop();
    },
  };
}

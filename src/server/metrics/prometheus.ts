import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { MetricsSnapshot, WorkerBreakerState } from "../../shared/metrics.js";
import type { UsageCounterRow } from "./usage.js";
import type { Observation } from "./window.js";

const BREAKER_STATES: WorkerBreakerState[] = ["closed", "open", "half_open", "tripped"];
/** Queue wait and execution, in seconds: a task waits milliseconds to hours and runs seconds to an hour. */
const TASK_SECONDS_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200];
/** A person's approval, in seconds: minutes to days. */
const APPROVAL_SECONDS_BUCKETS = [1, 10, 30, 60, 300, 900, 1800, 3600, 7200, 14_400, 28_800, 86_400, 172_800, 604_800];
/** One tRPC call, in seconds. */
const REQUEST_SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * The same figures as `metrics.live`, in Prometheus text format: windowed gauges set from each
 * snapshot, plus counters and histograms since the process started for `rate()` and
 * `histogram_quantile()`, which add up across processes (a quantile gauge would not). The console's
 * live percentiles come from the window, not from these. One registry per service, so several apps in
 * one process (tests) do not share series.
 */
export class PromExporter {
  readonly registry = new Registry();
  private readonly g;
  private readonly c;
  private readonly h;
  private readonly u;

  constructor() {
    const registers = [this.registry];
    const gauge = (name: string, help: string, labelNames: string[] = []) =>
      new Gauge({ name, help, labelNames, registers });
    this.g = {
      completed: gauge(
        "agency_tasks_completed_per_minute",
        "Tasks that reached a verdict or failed in the last minute.",
      ),
      queueDepth: gauge("agency_queue_depth", "Tasks waiting in the queue."),
      running: gauge("agency_tasks_running", "Tasks running on a worker."),
      awaitingApproval: gauge(
        "agency_tasks_awaiting_approval",
        "Tasks waiting for a person's approval (APPROVAL_POLICY).",
      ),
      oldestApprovalWait: gauge(
        "agency_approval_oldest_wait_seconds",
        "How long the oldest task awaiting approval has waited; absent when none waits.",
      ),
      success: gauge("agency_task_success_ratio", "Accepted tasks over completed tasks in the window."),
      errors: gauge("agency_attempt_error_ratio", "Failed or lost attempts over attempts ended in the window."),
      retries: gauge("agency_retries_per_minute", "Worker calls retried in the last minute."),
      window: gauge("agency_metrics_window_seconds", "Length of the rolling window of the ratios and quantiles."),
      workerInFlight: gauge("agency_worker_in_flight", "Attempts running on the worker.", ["worker"]),
      workerBreaker: gauge(
        "agency_worker_breaker_state",
        "1 for the worker's current circuit breaker state, 0 for the others.",
        ["worker", "state"],
      ),
      workerErrors: gauge(
        "agency_worker_error_ratio",
        "Failed attempts over ended attempts on the worker, in the window.",
        ["worker"],
      ),
      workerP95: gauge("agency_worker_execution_p95_seconds", "95th percentile of execution time on the worker.", [
        "worker",
      ]),
    };
    this.c = {
      finished: new Counter({
        name: "agency_tasks_finished_total",
        help: "Tasks that reached a final state since this process started, by outcome.",
        labelNames: ["outcome"],
        registers,
      }),
      attempts: new Counter({
        name: "agency_attempts_ended_total",
        help: "Attempts that ended since this process started, by result.",
        labelNames: ["result"],
        registers,
      }),
      retries: new Counter({
        name: "agency_retries_total",
        help: "Worker calls retried since this process started.",
        registers,
      }),
      webhooks: new Counter({
        name: "agency_webhook_deliveries_total",
        help: "Webhook delivery tries since this process started, by outcome (delivered, retrying, failed, disabled).",
        labelNames: ["outcome"],
        registers,
      }),
    };
    // Totals over every attempt in the database (not since this process started): set from its sums at each
    // scrape, so they survive a restart and agree between processes.
    const usageCounter = (name: string, help: string) =>
      new Counter({ name, help, labelNames: ["worker", "model"], registers });
    this.u = {
      input: usageCounter("agency_usage_input_tokens_total", "Input tokens workers reported, by worker and model."),
      output: usageCounter("agency_usage_output_tokens_total", "Output tokens workers reported, by worker and model."),
      cost: usageCounter("agency_usage_cost_usd_total", "Cost in US dollars workers reported, by worker and model."),
    };
    this.h = {
      queueWait: new Histogram({
        name: "agency_queue_wait_seconds",
        help: "Time from entering the queue to dispatch, per dispatched attempt, since this process started.",
        buckets: TASK_SECONDS_BUCKETS,
        registers,
      }),
      approvalWait: new Histogram({
        name: "agency_approval_wait_seconds",
        help: "Time from the council's accepting verdict to a person's approval or rejection, by decision, since this process started.",
        labelNames: ["decision"],
        buckets: APPROVAL_SECONDS_BUCKETS,
        registers,
      }),
      execution: new Histogram({
        name: "agency_execution_seconds",
        help: "Attempt execution time on the worker, per completed or failed attempt, since this process started.",
        buckets: TASK_SECONDS_BUCKETS,
        registers,
      }),
      requests: new Histogram({
        name: "agency_trpc_request_duration_seconds",
        help: "Time to answer one tRPC query or mutation (HTTP or WebSocket), by procedure, type and result code.",
        labelNames: ["procedure", "type", "code"],
        buckets: REQUEST_SECONDS_BUCKETS,
        registers,
      }),
    };
    collectDefaultMetrics({ register: this.registry });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  count(o: Observation): void {
    if (o.kind === "finished") this.c.finished.inc({ outcome: o.outcome });
    else if (o.kind === "attempt_ended") this.c.attempts.inc({ result: o.ok ? "completed" : "failed" });
    else if (o.kind === "retry") this.c.retries.inc();
    if (o.kind === "dispatched") this.h.queueWait.observe(o.queueWaitMs / 1000);
    else if (o.kind === "approval_decided") this.h.approvalWait.observe({ decision: o.decision }, o.waitMs / 1000);
    else if (o.kind === "attempt_ended" && o.executionMs !== null) this.h.execution.observe(o.executionMs / 1000);
  }

  /** One webhook delivery try's outcome. */
  webhookDelivery(outcome: "delivered" | "retrying" | "failed" | "disabled"): void {
    this.c.webhooks.inc({ outcome });
  }

  /** One answered tRPC call; `code` is "OK" or the tRPC error code. */
  request(procedure: string, type: string, code: string, seconds: number): void {
    this.h.requests.observe({ procedure, type, code }, seconds);
  }

  /** The usage totals as the database sums them now (usage.ts: usageCounters). */
  setUsage(rows: UsageCounterRow[]): void {
    const { u } = this;
    for (const c of [u.input, u.output, u.cost]) c.reset();
    for (const r of rows) {
      const labels = { worker: r.worker, model: r.model };
      u.input.inc(labels, r.inputTokens);
      u.output.inc(labels, r.outputTokens);
      u.cost.inc(labels, r.costUsd);
    }
  }

  set(s: MetricsSnapshot): void {
    const { g } = this;
    g.completed.set(s.completedPerMin);
    g.queueDepth.set(s.queueDepth);
    g.running.set(s.running);
    g.awaitingApproval.set(s.awaitingApproval);
    setOrRemove(g.oldestApprovalWait, {}, s.oldestApprovalWaitMs === null ? null : s.oldestApprovalWaitMs / 1000);
    setOrRemove(g.success, {}, s.successRate);
    setOrRemove(g.errors, {}, s.errorRate);
    g.retries.set(s.retriesPerMin);
    g.window.set(s.windowMs / 1000);
    // Workers come and go: start from empty so a removed worker's series disappears.
    for (const m of [g.workerInFlight, g.workerBreaker, g.workerErrors, g.workerP95]) m.reset();
    for (const w of s.workers) {
      g.workerInFlight.set({ worker: w.name }, w.inFlight);
      for (const state of BREAKER_STATES) g.workerBreaker.set({ worker: w.name, state }, w.breaker === state ? 1 : 0);
      if (w.errorRate !== null) g.workerErrors.set({ worker: w.name }, w.errorRate);
      if (w.p95Ms !== null) g.workerP95.set({ worker: w.name }, w.p95Ms / 1000);
    }
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}

function setOrRemove(g: Gauge, labels: Record<string, string>, v: number | null): void {
  if (v === null) g.reset();
  else g.set(labels, v);
}

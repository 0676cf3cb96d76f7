import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import type { LatencySummary, MetricsSnapshot, WorkerBreakerState } from "../../shared/metrics.js";
import type { Observation } from "./window.js";

const BREAKER_STATES: WorkerBreakerState[] = ["closed", "open", "half_open", "tripped"];
const QUANTILES = [
  ["0.5", "p50"],
  ["0.95", "p95"],
  ["0.99", "p99"],
] as const;

/**
 * The same figures as `metrics.live`, in Prometheus text format: windowed gauges set from each
 * snapshot, plus counters since the process started for `rate()`. One registry per service, so
 * several apps in one process (tests) do not share series.
 */
export class PromExporter {
  readonly registry = new Registry();
  private readonly g;
  private readonly c;

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
      success: gauge("agency_task_success_ratio", "Accepted tasks over completed tasks in the window."),
      errors: gauge("agency_attempt_error_ratio", "Failed or lost attempts over attempts ended in the window."),
      retries: gauge("agency_retries_per_minute", "Worker calls retried in the last minute."),
      queueWait: gauge(
        "agency_queue_wait_seconds",
        "Time from entering the queue to dispatch, by quantile over the window.",
        ["quantile"],
      ),
      execution: gauge(
        "agency_execution_seconds",
        "Attempt execution time on the worker, by quantile over the window.",
        ["quantile"],
      ),
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
  }

  set(s: MetricsSnapshot): void {
    const { g } = this;
    g.completed.set(s.completedPerMin);
    g.queueDepth.set(s.queueDepth);
    g.running.set(s.running);
    setOrRemove(g.success, {}, s.successRate);
    setOrRemove(g.errors, {}, s.errorRate);
    g.retries.set(s.retriesPerMin);
    g.window.set(s.windowMs / 1000);
    setQuantiles(g.queueWait, s.queueWaitMs);
    setQuantiles(g.execution, s.executionMs);
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

function setQuantiles(g: Gauge, l: LatencySummary): void {
  g.reset();
  for (const [q, key] of QUANTILES) {
    const v = l[key];
    if (v !== null) g.set({ quantile: q }, v / 1000);
  }
}

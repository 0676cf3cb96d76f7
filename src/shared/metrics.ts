import { z } from "zod";

/** Percentiles of one latency over the rolling window, in milliseconds; null figures when nothing was recorded. */
export interface LatencySummary {
  count: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

export type WorkerBreakerState = "closed" | "open" | "half_open" | "tripped";

export interface WorkerFigures {
  id: string;
  name: string;
  enabled: boolean;
  health: string;
  /** Attempts running on the worker now (from the attempts table). */
  inFlight: number;
  maxConcurrency: number;
  breaker: WorkerBreakerState;
  /** Attempts that ended on this worker within the window, and how many of them failed. */
  attempts: number;
  failed: number;
  /** failed / attempts over the window; null when no attempt ended. */
  errorRate: number | null;
  /** 95th percentile of execution time on this worker over the window (ms). */
  p95Ms: number | null;
}

/** What `metrics.live` pushes every interval and `GET /metrics` serves. */
export interface MetricsSnapshot {
  at: Date;
  /** The rolling window the percentiles and rates are taken over (ms). */
  windowMs: number;
  /** Tasks that reached a verdict or failed, over the last minute. */
  completedPerMin: number;
  /** Tasks queued and running now (read from the tasks table). */
  queueDepth: number;
  running: number;
  /** Tasks awaiting a person's approval now, and how long the oldest of them has waited (null: none waits). */
  awaitingApproval: number;
  oldestApprovalWaitMs: number | null;
  /** accepted / (accepted + changes requested + rejected + failed) over the window; null when none finished. */
  successRate: number | null;
  /** Failed or lost attempts / attempts ended, over the window; null when none ended. */
  errorRate: number | null;
  /** Tries that failed and were retried, over the last minute. */
  retriesPerMin: number;
  queueWaitMs: LatencySummary;
  executionMs: LatencySummary;
  /** Counts over the window by outcome. */
  window: {
    completed: number;
    accepted: number;
    changesRequested: number;
    rejected: number;
    failed: number;
    canceled: number;
    attemptsEnded: number;
    attemptsFailed: number;
    retries: number;
  };
  workers: WorkerFigures[];
}

/** One point of `metrics.history`: one step (one or more persisted minutes). */
export interface MetricsPoint {
  /** Start of the step. */
  at: Date;
  completed: number;
  accepted: number;
  failed: number;
  attemptsEnded: number;
  attemptsFailed: number;
  retries: number;
  /** Per minute over the step. */
  completedPerMin: number;
  retriesPerMin: number;
  successRate: number | null;
  errorRate: number | null;
  queueWaitMs: LatencySummary;
  executionMs: LatencySummary;
  /** Last reading within the step; null when none was taken (the process was not running). */
  queueDepth: number | null;
  running: number | null;
}

export const HISTORY_STEPS_MIN = [1, 5, 15, 60] as const;
export const MAX_HISTORY_POINTS = 2_000;

export const metricsHistoryInputSchema = z
  .object({
    from: z.coerce.date({ error: "from must be a date" }),
    to: z.coerce.date({ error: "to must be a date" }),
    /** Minutes per point. */
    step: z.union(
      HISTORY_STEPS_MIN.map((s) => z.literal(s)),
      { error: `step must be one of ${HISTORY_STEPS_MIN.join(", ")} minutes` },
    ),
  })
  .refine((i) => i.from < i.to, "from must be before to")
  .refine(
    (i) => (i.to.getTime() - i.from.getTime()) / (i.step * 60_000) <= MAX_HISTORY_POINTS,
    `At most ${MAX_HISTORY_POINTS} points: widen the step or shorten the range`,
  );
export type MetricsHistoryInput = z.input<typeof metricsHistoryInputSchema>;

/** Console time ranges and the step each one uses. */
export const METRIC_RANGES = [
  { key: "15m", label: "15 min", ms: 15 * 60_000, step: 1 },
  { key: "1h", label: "1 h", ms: 60 * 60_000, step: 1 },
  { key: "24h", label: "24 h", ms: 24 * 60 * 60_000, step: 15 },
  { key: "7d", label: "7 d", ms: 7 * 24 * 60 * 60_000, step: 60 },
] as const satisfies readonly { key: string; label: string; ms: number; step: (typeof HISTORY_STEPS_MIN)[number] }[];
export type MetricRangeKey = (typeof METRIC_RANGES)[number]["key"];

import type { MetricsPoint, MetricsSnapshot } from "../../shared/metrics.js";

/** One reading on the charts: a persisted step (placed at its end) or a live snapshot (placed at its time). */
export interface Sample {
  /** Milliseconds since the epoch. */
  t: number;
  completedPerMin: number;
  retriesPerMin: number;
  /** Fractions 0..1; null when nothing ended. */
  errorRate: number | null;
  successRate: number | null;
  execP50: number | null;
  execP95: number | null;
  execP99: number | null;
  waitP95: number | null;
  queueDepth: number | null;
  running: number | null;
  /** Tasks awaiting approval now, and the oldest one's wait (ms): live only, not kept in the rollups. */
  awaitingApproval: number | null;
  oldestApprovalWaitMs: number | null;
}

/**
 * A step's figures describe the minutes before its end, like a snapshot's rolling figures describe the
 * time before it: both are drawn at the moment they became known.
 */
export function fromPoint(p: MetricsPoint, stepMin: number): Sample {
  return {
    t: p.at.getTime() + stepMin * 60_000,
    completedPerMin: p.completedPerMin,
    retriesPerMin: p.retriesPerMin,
    errorRate: p.errorRate,
    successRate: p.successRate,
    execP50: p.executionMs.p50,
    execP95: p.executionMs.p95,
    execP99: p.executionMs.p99,
    waitP95: p.queueWaitMs.p95,
    queueDepth: p.queueDepth,
    running: p.running,
    awaitingApproval: null,
    oldestApprovalWaitMs: null,
  };
}

export function fromSnapshot(s: MetricsSnapshot): Sample {
  return {
    t: s.at.getTime(),
    completedPerMin: s.completedPerMin,
    retriesPerMin: s.retriesPerMin,
    errorRate: s.errorRate,
    successRate: s.successRate,
    execP50: s.executionMs.p50,
    execP95: s.executionMs.p95,
    execP99: s.executionMs.p99,
    waitP95: s.queueWaitMs.p95,
    queueDepth: s.queueDepth,
    running: s.running,
    awaitingApproval: s.awaitingApproval,
    oldestApprovalWaitMs: s.oldestApprovalWaitMs,
  };
}

/**
 * Adds a live sample to the buffer: samples within one `resolutionMs` bucket replace each other (long
 * ranges need no per-second detail), and samples older than `keepMs` before it are dropped.
 */
export function appendLive(buffer: readonly Sample[], s: Sample, resolutionMs: number, keepMs: number): Sample[] {
  const last = buffer.at(-1);
  if (last && s.t <= last.t) return buffer as Sample[];
  const sameBucket = last && resolutionMs > 0 && Math.floor(last.t / resolutionMs) === Math.floor(s.t / resolutionMs);
  const kept = buffer.filter((x) => x.t >= s.t - keepMs);
  if (sameBucket) kept.pop();
  kept.push(s);
  return kept;
}

/**
 * History first, then the live samples taken after the last persisted step ended (history covers the
 * ones before). A stretch with no reading (the server was down) is broken by an empty sample, so the
 * chart shows a gap instead of a line drawn through time nobody measured.
 */
export function joinSamples(history: readonly Sample[], live: readonly Sample[], stepMin: number): Sample[] {
  const cut = history.at(-1)?.t ?? Number.NEGATIVE_INFINITY;
  const all = [...history, ...live.filter((s) => s.t > cut)];
  const maxGap = 2 * stepMin * 60_000 + 30_000;
  const out: Sample[] = [];
  for (const s of all) {
    const prev = out.at(-1);
    if (prev && s.t - prev.t > maxGap) out.push(emptySample(prev.t + 1));
    out.push(s);
  }
  return out;
}

function emptySample(t: number): Sample {
  return {
    t,
    completedPerMin: Number.NaN,
    retriesPerMin: Number.NaN,
    errorRate: null,
    successRate: null,
    execP50: null,
    execP95: null,
    execP99: null,
    waitP95: null,
    queueDepth: null,
    running: null,
    awaitingApproval: null,
    oldestApprovalWaitMs: null,
  };
}

/** A chart's columns for uPlot: seconds, then one array per series; NaN becomes null (a gap). */
export function columns(
  samples: readonly Sample[],
  values: readonly ((s: Sample) => number | null)[],
): [number[], ...(number | null)[][]] {
  const xs = samples.map((s) => s.t / 1000);
  const ys = values.map((v) =>
    samples.map((s) => {
      const y = v(s);
      return y === null || Number.isNaN(y) ? null : y;
    }),
  );
  return [xs, ...ys];
}

/** The sample nearest to `ageMs` before the newest one, if the buffer reaches that far back (±10 s). */
export function sampleAgo(buffer: readonly Sample[], ageMs: number): Sample | null {
  const newest = buffer.at(-1);
  if (!newest) return null;
  const target = newest.t - ageMs;
  let best: Sample | null = null;
  for (const s of buffer) {
    if (Math.abs(s.t - target) > 10_000) continue;
    if (!best || Math.abs(s.t - target) < Math.abs(best.t - target)) best = s;
  }
  return best;
}

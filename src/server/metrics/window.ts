import * as hdr from "hdr-histogram-js";
import type { LatencySummary } from "../../shared/metrics.js";

export type Histogram = hdr.Histogram;

/** Milliseconds from 1 to 24 hours (the longest attempt deadline) at 3 significant digits: exact below 2048 ms. */
export function newHistogram(): Histogram {
  return hdr.build({
    bitBucketSize: "packed",
    lowestDiscernibleValue: 1,
    highestTrackableValue: 24 * 3_600_000,
    numberOfSignificantValueDigits: 3,
    useWebAssembly: false,
  });
}

const MAX_VALUE = 24 * 3_600_000;
export function recordMs(h: Histogram, ms: number): void {
  h.recordValue(Math.min(MAX_VALUE, Math.max(1, Math.round(ms))));
}

export function summarize(h: Histogram | null): LatencySummary {
  if (!h || h.totalCount === 0) return { count: 0, p50: null, p95: null, p99: null };
  return {
    count: h.totalCount,
    p50: h.getValueAtPercentile(50),
    p95: h.getValueAtPercentile(95),
    p99: h.getValueAtPercentile(99),
  };
}

export function encodeHistogram(h: Histogram | null): string | null {
  return h && h.totalCount > 0 ? hdr.encodeIntoCompressedBase64(h) : null;
}

export function decodeHistogram(s: string): Histogram {
  return hdr.decodeFromCompressedBase64(s, "packed", false);
}

export const FINISH_OUTCOMES = ["accepted", "changes_requested", "rejected", "failed", "canceled"] as const;
export type FinishOutcome = (typeof FINISH_OUTCOMES)[number];

/** One fact taken from the task event log; `at` is epoch ms of the commit that made it. */
export type Observation =
  | { kind: "finished"; at: number; outcome: FinishOutcome }
  | { kind: "dispatched"; at: number; queueWaitMs: number }
  | { kind: "attempt_ended"; at: number; workerId: string | null; ok: boolean; executionMs: number | null }
  | { kind: "retry"; at: number };

export interface Counts {
  accepted: number;
  changesRequested: number;
  rejected: number;
  failed: number;
  canceled: number;
  attemptsEnded: number;
  attemptsFailed: number;
  retries: number;
}

const zeroCounts = (): Counts => ({
  accepted: 0,
  changesRequested: 0,
  rejected: 0,
  failed: 0,
  canceled: 0,
  attemptsEnded: 0,
  attemptsFailed: 0,
  retries: 0,
});

/** Tasks that reached a verdict or failed (a cancel is the operator's choice, not an outcome of the work). */
export const completedOf = (c: Counts) => c.accepted + c.changesRequested + c.rejected + c.failed;

interface WorkerSlot {
  ended: number;
  failed: number;
  exec: Histogram | null;
}

interface Slot {
  start: number;
  counts: Counts;
  queueWait: Histogram | null;
  exec: Histogram | null;
  workers: Map<string, WorkerSlot>;
}

export interface Aggregate {
  counts: Counts;
  queueWait: Histogram | null;
  exec: Histogram | null;
  workers: Map<string, { ended: number; failed: number; exec: Histogram | null }>;
}

const OUTCOME_FIELD: Record<FinishOutcome, keyof Counts> = {
  accepted: "accepted",
  changes_requested: "changesRequested",
  rejected: "rejected",
  failed: "failed",
  canceled: "canceled",
};

function addInto(target: Histogram | null, source: Histogram | null): Histogram | null {
  if (!source || source.totalCount === 0) return target;
  const out = target ?? newHistogram();
  out.add(source);
  return out;
}

/**
 * Observations bucketed into fixed time slots, each with its own counters and HDR histograms, so
 * recording costs the same whatever the traffic and any span of whole slots can be merged: the
 * rolling window for the live figures, one minute for a rollup.
 */
export class SlotWindow {
  private readonly slots = new Map<number, Slot>();

  constructor(
    readonly slotMs: number,
    /** How far back slots are kept (the window, plus what rollups still need). */
    readonly retainMs: number,
  ) {
    if (60_000 % slotMs !== 0) throw new Error("The slot length must divide a minute.");
  }

  slotStart(at: number): number {
    return Math.floor(at / this.slotMs) * this.slotMs;
  }

  observe(o: Observation, now: number): void {
    if (o.at < now - this.retainMs) return;
    const start = this.slotStart(o.at);
    let slot = this.slots.get(start);
    if (!slot) {
      slot = { start, counts: zeroCounts(), queueWait: null, exec: null, workers: new Map() };
      this.slots.set(start, slot);
    }
    const c = slot.counts;
    switch (o.kind) {
      case "finished":
        c[OUTCOME_FIELD[o.outcome]]++;
        break;
      case "retry":
        c.retries++;
        break;
      case "dispatched":
        slot.queueWait ??= newHistogram();
        recordMs(slot.queueWait, o.queueWaitMs);
        break;
      case "attempt_ended": {
        c.attemptsEnded++;
        if (!o.ok) c.attemptsFailed++;
        let w: WorkerSlot | undefined;
        if (o.workerId) {
          w = slot.workers.get(o.workerId);
          if (!w) {
            w = { ended: 0, failed: 0, exec: null };
            slot.workers.set(o.workerId, w);
          }
          w.ended++;
          if (!o.ok) w.failed++;
        }
        if (o.executionMs !== null) {
          slot.exec ??= newHistogram();
          recordMs(slot.exec, o.executionMs);
          if (w) {
            w.exec ??= newHistogram();
            recordMs(w.exec, o.executionMs);
          }
        }
        break;
      }
    }
  }

  /** Drops slots older than the retention. */
  expire(now: number): void {
    for (const start of this.slots.keys()) if (start < now - this.retainMs) this.slots.delete(start);
  }

  /** Merges the slots that start in [from, to). */
  aggregate(from: number, to: number): Aggregate {
    const counts = zeroCounts();
    let queueWait: Histogram | null = null;
    let exec: Histogram | null = null;
    const workers: Aggregate["workers"] = new Map();
    for (const slot of this.slots.values()) {
      if (slot.start < from || slot.start >= to) continue;
      for (const k of Object.keys(counts) as (keyof Counts)[]) counts[k] += slot.counts[k];
      queueWait = addInto(queueWait, slot.queueWait);
      exec = addInto(exec, slot.exec);
      for (const [id, w] of slot.workers) {
        const agg = workers.get(id) ?? { ended: 0, failed: 0, exec: null };
        agg.ended += w.ended;
        agg.failed += w.failed;
        agg.exec = addInto(agg.exec, w.exec);
        workers.set(id, agg);
      }
    }
    return { counts, queueWait, exec, workers };
  }

  /** The slots that cover the last `spanMs` up to `now` (the one `now` falls in included). */
  recent(now: number, spanMs: number): Aggregate {
    const to = this.slotStart(now) + this.slotMs;
    return this.aggregate(to - spanMs, to);
  }

  get size(): number {
    return this.slots.size;
  }
}

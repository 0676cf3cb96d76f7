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
  | { kind: "retry"; at: number }
  /** A person approved or rejected a task awaiting approval after it waited `waitMs` (Prometheus only). */
  | { kind: "approval_decided"; at: number; decision: "approve" | "reject"; waitMs: number };

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

/** Adds (sign 1) or takes away (sign -1) one slot's figures from an aggregate. */
function applySlot(agg: Aggregate, slot: Slot, sign: 1 | -1): void {
  for (const k of Object.keys(agg.counts) as (keyof Counts)[]) agg.counts[k] += sign * slot.counts[k];
  const merge = (target: Histogram | null, source: Histogram | null) => {
    if (sign === 1) return addInto(target, source);
    if (target && source && source.totalCount > 0) target.subtract(source);
    return target;
  };
  agg.queueWait = merge(agg.queueWait, slot.queueWait);
  agg.exec = merge(agg.exec, slot.exec);
  for (const [id, w] of slot.workers) {
    const a = agg.workers.get(id) ?? { ended: 0, failed: 0, exec: null };
    a.ended += sign * w.ended;
    a.failed += sign * w.failed;
    a.exec = merge(a.exec, w.exec);
    agg.workers.set(id, a);
  }
}

/** Records one observation into a slot or a running aggregate (the two have the same figures). */
function record(target: Omit<Slot, "start">, o: Observation): void {
  const c = target.counts;
  switch (o.kind) {
    case "finished":
      c[OUTCOME_FIELD[o.outcome]]++;
      break;
    case "retry":
      c.retries++;
      break;
    case "dispatched":
      target.queueWait ??= newHistogram();
      recordMs(target.queueWait, o.queueWaitMs);
      break;
    case "attempt_ended": {
      c.attemptsEnded++;
      if (!o.ok) c.attemptsFailed++;
      let w: WorkerSlot | undefined;
      if (o.workerId) {
        w = target.workers.get(o.workerId);
        if (!w) {
          w = { ended: 0, failed: 0, exec: null };
          target.workers.set(o.workerId, w);
        }
        w.ended++;
        if (!o.ok) w.failed++;
      }
      if (o.executionMs !== null) {
        target.exec ??= newHistogram();
        recordMs(target.exec, o.executionMs);
        if (w) {
          w.exec ??= newHistogram();
          recordMs(w.exec, o.executionMs);
        }
      }
      break;
    }
  }
}

/** An aggregate of the slots in [from, to), kept up to date as the span moves and observations arrive. */
interface Running {
  from: number;
  to: number;
  agg: Aggregate;
}

/**
 * Observations bucketed into fixed time slots, each with its own counters and HDR histograms, so
 * recording costs the same whatever the traffic and any span of whole slots can be merged: the
 * rolling window for the live figures, one minute for a rollup.
 */
export class SlotWindow {
  private readonly slots = new Map<number, Slot>();
  private readonly running = new Map<number, Running>();

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
    record(slot, o);
    for (const r of this.running.values()) if (start >= r.from && start < r.to) record(r.agg, o);
  }

  /** Drops slots older than the retention. */
  expire(now: number): void {
    for (const [start, slot] of this.slots) {
      if (start >= now - this.retainMs) continue;
      for (const r of this.running.values()) if (start >= r.from && start < r.to) applySlot(r.agg, slot, -1);
      this.slots.delete(start);
    }
  }

  /** Merges the slots that start in [from, to). */
  aggregate(from: number, to: number): Aggregate {
    const agg: Aggregate = { counts: zeroCounts(), queueWait: null, exec: null, workers: new Map() };
    for (const slot of this.slots.values()) if (slot.start >= from && slot.start < to) applySlot(agg, slot, 1);
    return agg;
  }

  /**
   * The slots that cover the last `spanMs` up to `now` (the one `now` falls in included). Kept as a
   * running aggregate per span: each call adds the slots that entered the span and takes away those
   * that left it, so a snapshot costs the same however many slots the span holds. Read only.
   */
  recent(now: number, spanMs: number): Aggregate {
    const to = this.slotStart(now) + this.slotMs;
    const from = to - spanMs;
    const r = this.running.get(spanMs);
    if (!r || from < r.from || from >= r.to) {
      this.running.set(spanMs, { from, to, agg: this.aggregate(from, to) });
    } else {
      for (const slot of this.slots.values()) {
        if (slot.start >= r.from && slot.start < from) applySlot(r.agg, slot, -1);
        else if (slot.start >= r.to && slot.start < to) applySlot(r.agg, slot, 1);
      }
      r.from = from;
      r.to = to;
    }
    return (this.running.get(spanMs) as Running).agg;
  }

  get size(): number {
    return this.slots.size;
  }
}

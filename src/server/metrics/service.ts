import type {
  MetricsHistoryInput,
  MetricsPoint,
  MetricsSnapshot,
  WorkerBreakerState,
  WorkerFigures,
} from "../../shared/metrics.js";
import { metricsHistoryInputSchema } from "../../shared/metrics.js";
import type { TaskEventDto } from "../../shared/task-events.js";
import type { UsageRollup, UsageRollupInput } from "../../shared/usage.js";
import type { Database } from "../db/database.js";
import type { TaskEventHub } from "../events/task-event-hub.js";
import { toEventDto } from "../events/task-event-hub.js";
import { shareWithSubscribers } from "../lib/shared-serialization.js";
import type { Logger } from "../logger.js";
import { attemptKeys, attemptLookup, toObservations } from "./observations.js";
import { PromExporter } from "./prometheus.js";
import { usageCounters, usageRollup } from "./usage.js";
import {
  type Aggregate,
  completedOf,
  decodeHistogram,
  encodeHistogram,
  type Histogram,
  newHistogram,
  type Observation,
  SlotWindow,
  summarize,
} from "./window.js";

export interface MetricsSettings {
  /** How often a snapshot is taken and pushed to `metrics.live`. */
  intervalMs: number;
  /** Rolling window of the percentiles and ratios. */
  windowMs: number;
  retentionDays: number;
  /** Clock, for tests that replay known sequences at known times. */
  now?: () => number;
}

/** What the metrics need from the worker registry. */
export interface WorkerSource {
  list(): Promise<
    {
      id: string;
      name: string;
      enabled: boolean;
      health: string;
      inFlight: number;
      maxConcurrency: number;
      breaker: { state: WorkerBreakerState };
    }[]
  >;
}

const SLOT_MS = 5_000;
const MINUTE = 60_000;
/** A minute is written this long after it closes, so events committed at its very end are in. */
const ROLLUP_GRACE_MS = 5_000;
const PRUNE_EVERY_MS = 3_600_000;
const INGEST_BATCH = 500;
const WARM_PAGE = 2_000;
const RELEVANT_TYPES = ["state_changed", "attempt_try_failed"];

const ratio = (num: number, den: number) => (den > 0 ? num / den : null);
const floorMinute = (t: number) => Math.floor(t / MINUTE) * MINUTE;
/** Live subscribers woken per turn of the event loop when a snapshot is published. */
const LIVE_SLICE = 50;

/**
 * Live task metrics, computed from the task event log: every committed state change, dispatch,
 * attempt end and retried try becomes an observation in a slotted window of counters and HDR
 * histograms. At start the window is rebuilt from the last minutes of the log, so a restart does
 * not show zeros; closed minutes are persisted as rollups for history and pruned after retention.
 */
export class MetricsService {
  private readonly window: SlotWindow;
  private readonly now: () => number;
  private readonly lookup;
  readonly prom: PromExporter;
  private ctrl = new AbortController();
  private consuming: Promise<void> | null = null;
  private buffer: TaskEventDto[] = [];
  private flushScheduled = false;
  private flushing: Promise<void> = Promise.resolve();
  private tickTimer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private latest: MetricsSnapshot | null = null;
  private readonly listeners = new Set<(s: MetricsSnapshot) => void>();
  /** The last gauge reading taken in each minute not yet rolled up. */
  private readonly gauges = new Map<number, { queueDepth: number; running: number }>();
  /** Minutes up to and including this one are persisted. */
  private lastRolled = 0;
  private lastPrune = 0;
  private startedAt = 0;
  private started = false;
  private starting: Promise<void> | null = null;

  constructor(
    private readonly db: Database,
    private readonly hub: TaskEventHub,
    private readonly workers: WorkerSource,
    private readonly log: Logger,
    private readonly settings: MetricsSettings,
  ) {
    this.now = settings.now ?? Date.now;
    this.window = new SlotWindow(SLOT_MS, Math.max(settings.windowMs, MINUTE) + 2 * MINUTE);
    this.lookup = attemptLookup(db);
    this.prom = new PromExporter();
  }

  get windowMs(): number {
    return this.settings.windowMs;
  }

  /** Warms the window from the log, follows it, and starts the snapshot ticker; later calls wait for the first. */
  start(): Promise<void> {
    this.starting ??= this.begin();
    return this.starting;
  }

  private async begin(): Promise<void> {
    this.started = true;
    this.ctrl = new AbortController();
    const last = await this.db.prisma.metricRollup.aggregate({ _max: { minute: true } });
    const now = this.now();
    const since = floorMinute(now - this.settings.windowMs);
    this.lastRolled = Math.max(last._max.minute?.getTime() ?? 0, since - MINUTE);
    this.startedAt = now;
    const fromSeq = await this.warm(since);
    this.consuming = this.consume(fromSeq).catch((err: unknown) => {
      if (!this.ctrl.signal.aborted) this.log.error({ err }, "metrics: following the task event log failed");
    });
    await this.prune().catch((err: unknown) => this.log.warn({ err }, "metrics: pruning rollups failed"));
    this.scheduleTick(0);
  }

  async stop(): Promise<void> {
    if (!this.starting) return;
    await this.starting.catch(() => undefined);
    this.starting = null;
    this.started = false;
    this.ctrl.abort();
    if (this.tickTimer) clearTimeout(this.tickTimer);
    this.tickTimer = null;
    await this.consuming;
    await this.flushing;
    while (this.ticking) await this.ticking;
  }

  /** Replays the log since `since` into the window; returns the last event seq it read. */
  private async warm(since: number): Promise<bigint> {
    const before = await this.db.prisma.taskEvent.findFirst({
      where: { createdAt: { lt: new Date(since) } },
      orderBy: { seq: "desc" },
      select: { seq: true },
    });
    let cursor = before?.seq ?? 0n;
    for (;;) {
      const rows = await this.db.prisma.taskEvent.findMany({
        where: { seq: { gt: cursor } },
        orderBy: { seq: "asc" },
        take: WARM_PAGE,
      });
      if (rows.length === 0) break;
      cursor = rows[rows.length - 1]?.seq ?? cursor;
      const relevant = rows.filter((r) => RELEVANT_TYPES.includes(r.type)).map(toEventDto);
      await this.ingest(relevant, { live: false });
      if (rows.length < WARM_PAGE) break;
    }
    return cursor;
  }

  private async consume(from: bigint): Promise<void> {
    const signal = this.ctrl.signal;
    for await (const e of this.hub.subscribe({ lastEventId: from.toString(), signal })) {
      if (!RELEVANT_TYPES.includes(e.type)) continue;
      this.buffer.push(e);
      // Backpressure: a burst is taken in batches of INGEST_BATCH, one attempts query each.
      if (this.buffer.length >= INGEST_BATCH) await this.flush();
      else if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => void this.flush());
      }
    }
  }

  /** Resolves once every event taken from the log so far is in the figures. */
  flush(): Promise<void> {
    this.flushScheduled = false;
    const batch = this.buffer;
    this.buffer = [];
    this.flushing = this.flushing.then(async () => {
      await this.ingest(batch, { live: true }).catch((err: unknown) =>
        this.log.error({ err, events: batch.length }, "metrics: reading attempts for new events failed"),
      );
    });
    return this.flushing;
  }

  /** Waits until every event committed before the call is counted (for tests and shutdown). */
  async settle(): Promise<void> {
    await this.hub.flush();
    await new Promise((r) => setImmediate(r));
    await this.flush();
  }

  /** Adds committed task events to the figures. */
  async ingest(events: TaskEventDto[], opts: { live: boolean }): Promise<Observation[]> {
    if (events.length === 0) return [];
    const attempts = await this.lookup(attemptKeys(events));
    const observations = toObservations(events, attempts);
    const now = this.now();
    for (const o of observations) {
      this.window.observe(o, now);
      if (opts.live) this.prom.count(o);
    }
    return observations;
  }

  private scheduleTick(delay: number): void {
    if (!this.started) return;
    this.tickTimer = setTimeout(() => {
      this.ticking = this.tick()
        .catch((err: unknown) => this.log.warn({ err }, "metrics: taking a snapshot failed"))
        .finally(() => {
          this.ticking = null;
          this.scheduleTick(this.settings.intervalMs);
        });
    }, delay);
    this.tickTimer.unref();
  }

  private async tick(): Promise<void> {
    // Every live subscriber gets this object, unchanged: serialized once for all of them.
    const snap = shareWithSubscribers(await this.snapshot());
    this.latest = snap;
    await this.publish(snap);
    await this.rollup();
    if (this.now() - this.lastPrune >= PRUNE_EVERY_MS) await this.prune();
  }

  /**
   * Hands a snapshot to the live subscribers a slice at a time, letting the event loop run between
   * slices: a once-a-second snapshot to many sockets does not hold an operator's chat message or a
   * task event back behind all of its frames.
   */
  private async publish(snap: MetricsSnapshot): Promise<void> {
    let n = 0;
    for (const l of [...this.listeners]) {
      l(snap);
      if (++n % LIVE_SLICE === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /** A fresh snapshot: window figures plus the gauges read now. */
  async snapshot(): Promise<MetricsSnapshot> {
    const now = this.now();
    const [gauges, workers] = await Promise.all([this.readGauges(), this.workers.list()]);
    this.gauges.set(floorMinute(now), gauges);
    this.window.expire(now);
    const win = this.window.recent(now, this.settings.windowMs);
    const minute = this.window.recent(now, MINUTE);
    const c = win.counts;
    const workerFigures: WorkerFigures[] = workers.map((w) => {
      const agg = win.workers.get(w.id);
      return {
        id: w.id,
        name: w.name,
        enabled: w.enabled,
        health: w.health,
        inFlight: w.inFlight,
        maxConcurrency: w.maxConcurrency,
        breaker: w.breaker.state,
        attempts: agg?.ended ?? 0,
        failed: agg?.failed ?? 0,
        errorRate: ratio(agg?.failed ?? 0, agg?.ended ?? 0),
        p95Ms: summarize(agg?.exec ?? null).p95,
      };
    });
    const snap: MetricsSnapshot = {
      at: new Date(now),
      windowMs: this.settings.windowMs,
      completedPerMin: completedOf(minute.counts),
      queueDepth: gauges.queueDepth,
      running: gauges.running,
      awaitingApproval: gauges.awaitingApproval,
      oldestApprovalWaitMs: gauges.oldestApprovalWaitMs,
      successRate: ratio(c.accepted, completedOf(c)),
      errorRate: ratio(c.attemptsFailed, c.attemptsEnded),
      retriesPerMin: minute.counts.retries,
      queueWaitMs: summarize(win.queueWait),
      executionMs: summarize(win.exec),
      window: { completed: completedOf(c), ...c },
      workers: workerFigures,
    };
    this.prom.set(snap);
    return snap;
  }

  private async readGauges(): Promise<{
    queueDepth: number;
    running: number;
    awaitingApproval: number;
    oldestApprovalWaitMs: number | null;
  }> {
    // A task awaiting approval has waited since its accepting verdict, the last change to its row.
    const rows = await this.db.query<{ state: string; n: number; oldest_ms: number | null }>(
      `SELECT state::text AS state, count(*)::int AS n,
              CASE WHEN state = 'awaiting_approval'
                   THEN GREATEST(0, floor(extract(epoch FROM (now() - min(updated_at))) * 1000))::float8 END AS oldest_ms
         FROM tasks WHERE state IN ('queued', 'running', 'awaiting_approval') GROUP BY state`,
    );
    const row = (s: string) => rows.find((r) => r.state === s);
    const n = (s: string) => Number(row(s)?.n ?? 0);
    const oldest = row("awaiting_approval")?.oldest_ms;
    return {
      queueDepth: n("queued"),
      running: n("running"),
      awaitingApproval: n("awaiting_approval"),
      oldestApprovalWaitMs: oldest === null || oldest === undefined ? null : Number(oldest),
    };
  }

  /** Figures now, for a one-off read (starts following the log on first use). */
  async read(): Promise<MetricsSnapshot> {
    await this.start();
    return this.snapshot();
  }

  /** The latest snapshot at once, then each new one; a slow reader skips to the newest (never a backlog). */
  async *live(signal?: AbortSignal): AsyncGenerator<MetricsSnapshot> {
    await this.start();
    let pending: MetricsSnapshot | null = this.latest ?? (await this.snapshot());
    let wake: (() => void) | null = null;
    const listener = (s: MetricsSnapshot) => {
      pending = s;
      wake?.();
    };
    this.listeners.add(listener);
    const onAbort = () => wake?.();
    signal?.addEventListener("abort", onAbort);
    try {
      while (!signal?.aborted) {
        if (pending) {
          const s: MetricsSnapshot = pending;
          pending = null;
          yield s;
          continue;
        }
        await new Promise<void>((resolve) => {
          wake = () => {
            wake = null;
            resolve();
          };
        });
      }
    } finally {
      this.listeners.delete(listener);
      signal?.removeEventListener("abort", onAbort);
    }
  }

  get liveSubscribers(): number {
    return this.listeners.size;
  }

  /** Persists every minute that closed (plus the grace) since the last one written. */
  async rollup(): Promise<number> {
    const now = this.now();
    let written = 0;
    for (let m = this.lastRolled + MINUTE; m + MINUTE + ROLLUP_GRACE_MS <= now; m += MINUTE) {
      const agg = this.window.aggregate(m, m + MINUTE);
      const g = this.gauges.get(m) ?? null;
      // A minute that ended before this process started, with nothing in the log, was not observed by
      // anyone: it stays a gap in the charts rather than a row of zeros.
      const empty = Object.values(agg.counts).every((n) => n === 0) && !agg.queueWait && !agg.exec;
      if (!(empty && g === null && m + MINUTE <= this.startedAt)) {
        await this.writeRollup(m, agg, g);
        written++;
      }
      this.gauges.delete(m);
      this.lastRolled = m;
    }
    return written;
  }

  private async writeRollup(
    minute: number,
    agg: Aggregate,
    g: { queueDepth: number; running: number } | null,
  ): Promise<void> {
    const c = agg.counts;
    const qw = summarize(agg.queueWait);
    const ex = summarize(agg.exec);
    const data = {
      completed: completedOf(c),
      accepted: c.accepted,
      changesRequested: c.changesRequested,
      rejected: c.rejected,
      failed: c.failed,
      canceled: c.canceled,
      attemptsEnded: c.attemptsEnded,
      attemptsFailed: c.attemptsFailed,
      retries: c.retries,
      queueWaitP50: qw.p50,
      queueWaitP95: qw.p95,
      queueWaitP99: qw.p99,
      executionP50: ex.p50,
      executionP95: ex.p95,
      executionP99: ex.p99,
      queueWaitCount: qw.count,
      executionCount: ex.count,
      queueWaitHist: encodeHistogram(agg.queueWait),
      executionHist: encodeHistogram(agg.exec),
    };
    // Several processes may write the same minute from the same log: the last one wins, a reading
    // of the gauges is never replaced by the absence of one.
    await this.db.prisma.metricRollup.upsert({
      where: { minute: new Date(minute) },
      create: { minute: new Date(minute), ...data, queueDepth: g?.queueDepth ?? null, running: g?.running ?? null },
      update: { ...data, ...(g ? { queueDepth: g.queueDepth, running: g.running } : {}) },
    });
  }

  /** Deletes rollups older than the retention. */
  async prune(): Promise<number> {
    const now = this.now();
    this.lastPrune = now;
    const { count } = await this.db.prisma.metricRollup.deleteMany({
      where: { minute: { lt: new Date(now - this.settings.retentionDays * 24 * 3_600_000) } },
    });
    return count;
  }

  /** Persisted minutes in [from, to), merged into steps of `step` minutes (percentiles merged exactly). */
  async history(raw: MetricsHistoryInput): Promise<MetricsPoint[]> {
    const input = metricsHistoryInputSchema.parse(raw);
    const stepMs = input.step * MINUTE;
    const rows = await this.db.prisma.metricRollup.findMany({
      where: { minute: { gte: new Date(floorMinute(input.from.getTime())), lt: input.to } },
      orderBy: { minute: "asc" },
    });
    const buckets = new Map<number, typeof rows>();
    for (const r of rows) {
      const b = Math.floor(r.minute.getTime() / stepMs) * stepMs;
      const list = buckets.get(b) ?? [];
      list.push(r);
      buckets.set(b, list);
    }
    const points: MetricsPoint[] = [];
    for (const [start, list] of buckets) {
      const sum = (f: (r: (typeof rows)[number]) => number) => list.reduce((a, r) => a + f(r), 0);
      const completed = sum((r) => r.completed);
      const accepted = sum((r) => r.accepted);
      const attemptsEnded = sum((r) => r.attemptsEnded);
      const attemptsFailed = sum((r) => r.attemptsFailed);
      const retries = sum((r) => r.retries);
      const minutes = list.length;
      let queueWaitMs: MetricsPoint["queueWaitMs"];
      let executionMs: MetricsPoint["executionMs"];
      if (list.length === 1 && list[0]) {
        // One minute: its stored percentiles, no histogram to decode.
        const r = list[0];
        queueWaitMs = { count: r.queueWaitCount, p50: r.queueWaitP50, p95: r.queueWaitP95, p99: r.queueWaitP99 };
        executionMs = { count: r.executionCount, p50: r.executionP50, p95: r.executionP95, p99: r.executionP99 };
      } else {
        queueWaitMs = summarize(merge(list.map((r) => r.queueWaitHist)));
        executionMs = summarize(merge(list.map((r) => r.executionHist)));
      }
      const lastReading = [...list].reverse().find((r) => r.queueDepth !== null);
      points.push({
        at: new Date(start),
        completed,
        accepted,
        failed: completed - accepted,
        attemptsEnded,
        attemptsFailed,
        retries,
        completedPerMin: completed / minutes,
        retriesPerMin: retries / minutes,
        successRate: ratio(accepted, completed),
        errorRate: ratio(attemptsFailed, attemptsEnded),
        queueWaitMs,
        executionMs,
        queueDepth: lastReading?.queueDepth ?? null,
        running: lastReading?.running ?? null,
      });
    }
    return points;
  }

  /** Reported usage of the attempts that ended in [from, to), by worker, UTC day or model. */
  usage(input: UsageRollupInput): Promise<UsageRollup> {
    return usageRollup(this.db, input);
  }

  /** Prometheus text exposition of a fresh snapshot, the counters since this process started and the usage totals. */
  async prometheus(): Promise<{ contentType: string; body: string }> {
    await this.start();
    const [usage] = await Promise.all([usageCounters(this.db), this.snapshot()]);
    this.prom.setUsage(usage);
    return { contentType: this.prom.contentType, body: await this.prom.render() };
  }
}

function merge(encoded: (string | null)[]): Histogram | null {
  let out: Histogram | null = null;
  for (const e of encoded) {
    if (!e) continue;
    out ??= newHistogram();
    out.add(decodeHistogram(e));
  }
  return out;
}

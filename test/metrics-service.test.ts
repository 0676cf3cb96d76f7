import { createTRPCClient, createWSClient, wsLink } from "@trpc/client";
import superjson from "superjson";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { TaskEventHub } from "../src/server/events/task-event-hub.js";
import { MetricsService } from "../src/server/metrics/service.js";
import type { AppRouter } from "../src/server/router.js";
import type { MetricsSnapshot } from "../src/shared/metrics.js";
import { DATABASES } from "./helpers/databases.js";
import {
  ADMIN_TOKEN,
  type EngineApp,
  type FaultWorker,
  startEngineApp,
  startFaultWorker,
  waitFor,
} from "./helpers/fault-worker.js";
import { silentLog } from "./helpers/services.js";

/** HDR's percentile on exact values: the value at rank max(1, round(p·N)). */
/**
 * The exact percentile, as a 3-significant-digit HDR histogram reports it: values below 2048 ms as they are, larger
 * ones as the highest value of their bucket (2 ms wide up to 4096, 4 ms up to 8192, …). Sandboxed scripts on a
 * loaded machine do run past 2 s.
 */
function percentile(values: number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.floor((p / 100) * sorted.length + 0.5));
  const exact = Math.max(1, sorted[rank - 1] as number);
  if (exact < 2048) return exact;
  const bucket = 2 ** (Math.floor(Math.log2(exact)) - 10);
  return Math.floor(exact / bucket) * bucket + bucket - 1;
}

describe.each(DATABASES)("metrics from real task runs on %s", (kind) => {
  let s: EngineApp;
  let ok: FaultWorker;
  let flaky: FaultWorker;
  const ids: string[] = [];

  beforeAll(async () => {
    ok = await startFaultWorker({ durationMs: 20 });
    // First call 503 (retried), then one attempt reported failed by the worker, then fine.
    flaky = await startFaultWorker({ script: ["503", "ok", "fail"] });
    s = await startEngineApp(kind, { RETRY_POLICY: JSON.stringify({ 3: { attempts: 1, tries: 3 } }) });
    await s.http.workers.register.mutate({ name: "steady", url: ok.url, capabilities: ["script"], maxConcurrency: 4 });
    await s.http.workers.register.mutate({ name: "flaky", url: flaky.url, capabilities: ["flaky"], maxConcurrency: 1 });
    for (let i = 0; i < 6; i++) ids.push((await s.http.tasks.create.mutate({ title: `steady ${i}` })).id);
    for (let i = 0; i < 3; i++) {
      ids.push((await s.http.tasks.create.mutate({ title: `flaky ${i}`, capability: "flaky", riskTier: 3 })).id);
    }
    await waitFor(
      "every task to finish",
      () => s.db.prisma.task.count({ where: { id: { in: ids }, state: { in: ["accepted", "failed"] } } }),
      (n) => n === ids.length,
    );
    await s.services.metrics.start();
    await s.services.metrics.settle();
  }, 60_000);
  afterAll(async () => {
    await s?.stop();
    await ok?.close();
    await flaky?.close();
  });

  async function expectedFromDatabase() {
    const attempts = await s.db.prisma.attempt.findMany({ where: { taskId: { in: ids } } });
    const exec = attempts.map((a) => (a.finishedAt as Date).getTime() - a.startedAt.getTime());
    const wait = attempts.map((a) => a.startedAt.getTime() - a.queuedAt.getTime());
    const tasks = await s.db.prisma.task.groupBy({ by: ["state"], where: { id: { in: ids } }, _count: { _all: true } });
    const count = (st: string) => tasks.find((t) => t.state === st)?._count._all ?? 0;
    const retries = await s.db.prisma.taskEvent.count({ where: { type: "attempt_try_failed" } });
    return { attempts, exec, wait, accepted: count("accepted"), failed: count("failed"), retries };
  }

  function expectFigures(snap: MetricsSnapshot, exp: Awaited<ReturnType<typeof expectedFromDatabase>>) {
    expect(snap.window.accepted).toBe(exp.accepted);
    expect(snap.window.failed).toBe(exp.failed);
    expect(snap.window.completed).toBe(ids.length);
    expect(snap.completedPerMin).toBe(ids.length);
    expect(snap.successRate).toBeCloseTo(exp.accepted / ids.length, 10);
    expect(snap.window.attemptsEnded).toBe(exp.attempts.length);
    expect(snap.window.retries).toBe(exp.retries);
    expect(snap.executionMs).toEqual({
      count: exp.exec.length,
      p50: percentile(exp.exec, 50),
      p95: percentile(exp.exec, 95),
      p99: percentile(exp.exec, 99),
    });
    expect(snap.queueWaitMs).toEqual({
      count: exp.wait.length,
      p50: percentile(exp.wait, 50),
      p95: percentile(exp.wait, 95),
      p99: percentile(exp.wait, 99),
    });
  }

  it("computes throughput, outcomes, retries and exact latency percentiles from what ran", async () => {
    const exp = await expectedFromDatabase();
    expect(exp.failed).toBe(1);
    expect(exp.retries).toBeGreaterThanOrEqual(1);
    const snap = await s.services.metrics.read();
    expectFigures(snap, exp);
    expect(snap.queueDepth).toBe(0);
    expect(snap.running).toBe(0);
    expect(snap.errorRate).toBeCloseTo(1 / exp.attempts.length, 10);
    const flakyFigures = snap.workers.find((w) => w.name === "flaky");
    expect(flakyFigures).toMatchObject({ attempts: 3, failed: 1, inFlight: 0, breaker: "closed" });
    expect(flakyFigures?.errorRate).toBeCloseTo(1 / 3, 10);
    const steady = snap.workers.find((w) => w.name === "steady");
    const steadyRows = await s.db.prisma.attempt.findMany({ where: { worker: { name: "steady" } } });
    expect(steady?.p95Ms).toBe(
      percentile(
        steadyRows.map((a) => (a.finishedAt as Date).getTime() - a.startedAt.getTime()),
        95,
      ),
    );
  });

  it("shows the same figures after a restart: the window is rebuilt from the event log", async () => {
    const hub = new TaskEventHub(s.db, silentLog);
    await hub.start();
    const restarted = new MetricsService(s.db, hub, s.services.workers, silentLog, {
      intervalMs: 60_000,
      windowMs: 300_000,
      retentionDays: 7,
    });
    try {
      await restarted.start();
      expectFigures(await restarted.read(), await expectedFromDatabase());
    } finally {
      await restarted.stop();
      hub.stop();
    }
  });

  it("serves the figures on GET /metrics in Prometheus text format", async () => {
    const exp = await expectedFromDatabase();
    // /metrics needs a token (test/web-origin.test.ts covers who may read it); this is the admin's.
    const res = await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toContain("# TYPE agency_queue_depth gauge");
    expect(text).toMatch(/^agency_queue_depth 0$/m);
    expect(text).toMatch(new RegExp(`^agency_tasks_completed_per_minute ${ids.length}$`, "m"));
    expect(text).toMatch(/^agency_worker_breaker_state\{worker="flaky",state="closed"\} 1$/m);
    expect(text).toMatch(/^agency_worker_breaker_state\{worker="flaky",state="open"\} 0$/m);
    expect(text).toMatch(/^agency_worker_in_flight\{worker="steady"\} 0$/m);
    // Histograms, which add up across processes (quantile gauges would not): every attempt this process ran.
    expect(text).toContain("# TYPE agency_execution_seconds histogram");
    expect(text).toContain("# TYPE agency_queue_wait_seconds histogram");
    expect(text).not.toMatch(/quantile=/);
    const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? Number.NaN);
    const seconds = (ms: number[]) => ms.reduce((a, b) => a + b, 0) / 1000;
    expect(exp.exec.length).toBeGreaterThan(0);
    expect(value(/^agency_execution_seconds_count (\S+)$/m)).toBe(exp.exec.length);
    expect(value(/^agency_execution_seconds_bucket\{le="\+Inf"\} (\S+)$/m)).toBe(exp.exec.length);
    expect(value(/^agency_execution_seconds_sum (\S+)$/m)).toBeCloseTo(seconds(exp.exec), 6);
    expect(value(/^agency_queue_wait_seconds_count (\S+)$/m)).toBe(exp.wait.length);
    expect(value(/^agency_queue_wait_seconds_sum (\S+)$/m)).toBeCloseTo(seconds(exp.wait), 6);
    expect(text).toMatch(/^agency_worker_error_ratio\{worker="flaky"\} 0\.333/m);
    expect(text).toContain("# TYPE agency_tasks_finished_total counter");
    expect(text).toContain("process_resident_memory_bytes");
    expect((await fetch(`${s.url}/metrics`, { method: "POST" })).status).not.toBe(200);
  });

  it("pushes snapshots on metrics.live, tracked by time, over the WebSocket", async () => {
    const client = createWSClient({
      url: `${s.url.replace("http", "ws")}/trpc`,
      WebSocket: WebSocket as never,
      connectionParams: { token: ADMIN_TOKEN },
    });
    const trpc = createTRPCClient<AppRouter>({ links: [wsLink({ client, transformer: superjson })] });
    const got: { id: string; data: MetricsSnapshot }[] = [];
    try {
      await new Promise<void>((resolve, reject) => {
        const sub = trpc.metrics.live.subscribe(undefined, {
          onData(d) {
            got.push(d as unknown as { id: string; data: MetricsSnapshot });
            if (got.length === 2) {
              sub.unsubscribe();
              resolve();
            }
          },
          onError: reject,
        });
      });
    } finally {
      client.close();
    }
    // The first may be the ticker's last snapshot; the second is taken after every run was counted.
    expect(got[1]?.data.window.completed).toBe(ids.length);
    expect(got[0]?.id).toBe(String(got[0]?.data.at.getTime()));
    expect(Number(got[1]?.id)).toBeGreaterThan(Number(got[0]?.id));
  });

  it("hands each snapshot to every one of many live subscribers, the same object to all", async () => {
    const ctrl = new AbortController();
    const SUBSCRIBERS = 130; // more than one slice of subscribers woken per turn of the event loop
    let since = Number.POSITIVE_INFINITY;
    const seen: MetricsSnapshot[][] = Array.from({ length: SUBSCRIBERS }, () => []);
    const runs = seen.map(async (mine) => {
      for await (const snap of s.services.metrics.live(ctrl.signal)) {
        // Only snapshots taken once every subscriber was listening.
        if (snap.at.getTime() >= since) mine.push(snap);
        if (mine.length === 2) return;
      }
    });
    await waitFor(
      "every subscriber to listen",
      async () => s.services.metrics.liveSubscribers,
      (n) => n === SUBSCRIBERS,
    );
    since = Date.now();
    await Promise.all(runs);
    ctrl.abort();
    for (const mine of seen) {
      expect(mine[0]).toBe(seen[0]?.[0]);
      expect(mine[1]).toBe(seen[0]?.[1]);
    }
    expect(s.services.metrics.liveSubscribers).toBe(0);
  });

  it("refuses a history request it cannot answer, naming the field", async () => {
    await expect(s.http.metrics.history.query({ from: new Date(2), to: new Date(1), step: 1 })).rejects.toThrow(
      /from must be before to/,
    );
    await expect(s.http.metrics.history.query({ from: new Date(0), to: new Date(), step: 7 as 1 })).rejects.toThrow(
      /step must be one of 1, 5, 15, 60/,
    );
    await expect(
      s.http.metrics.history.query({ from: new Date(Date.now() - 30 * 86_400_000), to: new Date(), step: 1 }),
    ).rejects.toThrow(/At most 2000 points/);
  });

  it("rolls closed minutes up, answers history from them, and prunes past the retention", async () => {
    const exp = await expectedFromDatabase();
    const realNow = Date.now();
    // Mid-minute, so the minute that closed just before this start is past the rollup grace either way
    // (one that closed within the grace before the start would be a gap by design, and not count below).
    let clock = Math.floor(realNow / 60_000) * 60_000 + 3 * 60_000 + 30_000;
    const hub = new TaskEventHub(s.db, silentLog);
    await hub.start();
    const m = new MetricsService(s.db, hub, s.services.workers, silentLog, {
      intervalMs: 60_000,
      windowMs: 600_000,
      retentionDays: 7,
      now: () => clock,
    });
    try {
      await m.start();
      await m.rollup();
      const from = new Date(realNow - 10 * 60_000);
      const to = new Date(clock);
      const minutes = await m.history({ from, to, step: 1 });
      expect(minutes.reduce((n, p) => n + p.completed, 0)).toBe(ids.length);
      expect(minutes.reduce((n, p) => n + p.accepted, 0)).toBe(exp.accepted);
      expect(minutes.reduce((n, p) => n + p.retries, 0)).toBe(exp.retries);
      expect(minutes.reduce((n, p) => n + p.executionMs.count, 0)).toBe(exp.exec.length);
      // The minutes between the last event and this start were observed by no process: a gap, not zeros.
      const lastEvent = Math.max(...exp.attempts.map((a) => (a.finishedAt as Date).getTime()));
      const quiet = minutes.filter((p) => p.at.getTime() > lastEvent && p.at.getTime() + 60_000 <= clock - 60_000);
      expect(quiet).toEqual([]);
      expect(minutes.length).toBeGreaterThan(0);
      // Coarser steps merge the minutes' histograms: each hour has the exact percentiles of its attempts.
      const hours = await m.history({ from: new Date(realNow - 2 * 3_600_000), to, step: 60 });
      expect(hours.reduce((n, p) => n + p.completed, 0)).toBe(ids.length);
      for (const h of hours) {
        const start = h.at.getTime();
        const inHour = exp.attempts
          .filter(
            (a) => (a.finishedAt as Date).getTime() >= start && (a.finishedAt as Date).getTime() < start + 3_600_000,
          )
          .map((a) => (a.finishedAt as Date).getTime() - a.startedAt.getTime());
        expect(h.executionMs).toEqual({
          count: inHour.length,
          p50: percentile(inHour, 50),
          p95: percentile(inHour, 95),
          p99: percentile(inHour, 99),
        });
      }
      // Written once: a second pass writes nothing, and the rows are keyed by minute.
      expect(await m.rollup()).toBe(0);
      const rows = await s.db.prisma.metricRollup.count();
      clock += 60_000;
      expect(await m.rollup()).toBe(1);
      expect(await s.db.prisma.metricRollup.count()).toBe(rows + 1);

      const day = 86_400_000;
      await s.db.prisma.metricRollup.createMany({
        data: [
          { minute: new Date(Math.floor((clock - 8 * day) / 60_000) * 60_000), completed: 5 },
          { minute: new Date(Math.floor((clock - 6 * day) / 60_000) * 60_000), completed: 7 },
        ],
      });
      expect(await m.prune()).toBe(1);
      const old = await m.history({ from: new Date(clock - 9 * day), to: new Date(clock - 5 * day), step: 60 });
      expect(old.map((p) => p.completed)).toEqual([7]);
    } finally {
      await m.stop();
      hub.stop();
    }
  });
});

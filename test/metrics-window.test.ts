import { describe, expect, it } from "vitest";
import { attemptKeys, toObservations } from "../src/server/metrics/observations.js";
import {
  completedOf,
  decodeHistogram,
  encodeHistogram,
  newHistogram,
  type Observation,
  SlotWindow,
  summarize,
} from "../src/server/metrics/window.js";
import type { TaskEventDto } from "../src/shared/task-events.js";

const T0 = Date.UTC(2026, 10, 25, 12, 0, 0);
const sec = (s: number) => T0 + s * 1000;

function ended(at: number, executionMs: number | null, ok = true, workerId: string | null = "w1"): Observation {
  return { kind: "attempt_ended", at, workerId, ok, executionMs };
}

describe("SlotWindow", () => {
  it("gives the exact p50/p95/p99 of a known sequence (1..100 ms, shuffled)", () => {
    const w = new SlotWindow(5_000, 600_000);
    const values = Array.from({ length: 100 }, (_, i) => i + 1).sort((a, b) => ((a * 37) % 101) - ((b * 37) % 101));
    values.forEach((v, i) => {
      w.observe(ended(sec(i % 200), v), sec(200));
    });
    const agg = w.recent(sec(200), 300_000);
    expect(summarize(agg.exec)).toEqual({ count: 100, p50: 50, p95: 95, p99: 99 });
    expect(agg.counts.attemptsEnded).toBe(100);
  });

  it("takes percentiles of a skewed sequence: 90 fast, 10 slow", () => {
    const w = new SlotWindow(5_000, 600_000);
    for (let i = 0; i < 90; i++) w.observe({ kind: "dispatched", at: sec(10), queueWaitMs: 20 }, sec(11));
    for (let i = 0; i < 10; i++) w.observe({ kind: "dispatched", at: sec(10), queueWaitMs: 1500 }, sec(11));
    expect(summarize(w.recent(sec(11), 60_000).queueWait)).toEqual({ count: 100, p50: 20, p95: 1500, p99: 1500 });
  });

  it("reports nothing, not zero, for a latency with no samples", () => {
    const w = new SlotWindow(5_000, 600_000);
    expect(summarize(w.recent(sec(0), 60_000).exec)).toEqual({ count: 0, p50: null, p95: null, p99: null });
  });

  it("counts the last minute for rates and the whole window for ratios", () => {
    const w = new SlotWindow(5_000, 600_000);
    const now = sec(300);
    // Four minutes ago: 3 accepted, 1 failed. In the last minute: 2 accepted, 1 rejected, 1 canceled.
    for (const outcome of ["accepted", "accepted", "accepted", "failed"] as const) {
      w.observe({ kind: "finished", at: sec(60), outcome }, now);
    }
    for (const outcome of ["accepted", "accepted", "rejected", "canceled"] as const) {
      w.observe({ kind: "finished", at: sec(290), outcome }, now);
    }
    w.observe({ kind: "retry", at: sec(295) }, now);
    w.observe({ kind: "retry", at: sec(100) }, now);
    const minute = w.recent(now, 60_000);
    const window = w.recent(now, 300_000);
    expect(completedOf(minute.counts)).toBe(3);
    expect(minute.counts.canceled).toBe(1);
    expect(minute.counts.retries).toBe(1);
    expect(completedOf(window.counts)).toBe(7);
    expect(window.counts.accepted).toBe(5);
    expect(window.counts.retries).toBe(2);
  });

  it("drops observations older than its retention and expires old slots", () => {
    const w = new SlotWindow(5_000, 120_000);
    w.observe({ kind: "finished", at: sec(0), outcome: "accepted" }, sec(500));
    expect(w.size).toBe(0);
    w.observe({ kind: "finished", at: sec(450), outcome: "accepted" }, sec(500));
    w.observe({ kind: "finished", at: sec(495), outcome: "accepted" }, sec(500));
    expect(w.size).toBe(2);
    w.expire(sec(580));
    expect(w.size).toBe(1);
  });

  it("keeps per-worker attempts, failures and execution percentiles apart", () => {
    const w = new SlotWindow(5_000, 600_000);
    for (let i = 1; i <= 20; i++) w.observe(ended(sec(5), i * 10, i % 4 !== 0, "a"), sec(6));
    for (let i = 1; i <= 10; i++) w.observe(ended(sec(5), 1000, i > 5, "b"), sec(6));
    w.observe(ended(sec(5), null, false, "b"), sec(6));
    const agg = w.recent(sec(6), 60_000);
    const a = agg.workers.get("a");
    const b = agg.workers.get("b");
    expect(a).toMatchObject({ ended: 20, failed: 5 });
    expect(summarize(a?.exec ?? null).p95).toBe(190);
    expect(b).toMatchObject({ ended: 11, failed: 6 });
    expect(summarize(b?.exec ?? null)).toMatchObject({ count: 10, p95: 1000 });
    expect(agg.counts).toMatchObject({ attemptsEnded: 31, attemptsFailed: 11 });
  });

  it("aggregates exactly one minute for a rollup, whatever else is in the window", () => {
    const w = new SlotWindow(5_000, 600_000);
    const minute = T0 + 60_000;
    w.observe({ kind: "finished", at: minute - 1, outcome: "accepted" }, minute + 120_000);
    w.observe({ kind: "finished", at: minute, outcome: "accepted" }, minute + 120_000);
    w.observe({ kind: "finished", at: minute + 59_999, outcome: "failed" }, minute + 120_000);
    w.observe({ kind: "finished", at: minute + 60_000, outcome: "accepted" }, minute + 120_000);
    const agg = w.aggregate(minute, minute + 60_000);
    expect(agg.counts).toMatchObject({ accepted: 1, failed: 1 });
  });

  it.each([
    { retainMs: 120_000, pauses: false },
    // A retention shorter than two spans and pauses between snapshots: slots expire while still in the running span.
    { retainMs: 70_000, pauses: true },
  ])(
    "keeps its running window equal to a fresh merge as the span moves, late observations arrive and slots expire (%o)",
    ({ retainMs, pauses }) => {
      const w = new SlotWindow(5_000, retainMs);
      const span = 60_000;
      let seed = 7;
      const next = () => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed;
      };
      for (let t = 0; t < 240; t++) {
        const now = sec(t);
        for (let i = 0; i < 5; i++) {
          // Mostly current, some late by up to 90 s (other processes' commits), some beyond the retention.
          const late = next() % 10 === 0 ? (next() % 150) * 1000 : 0;
          const at = now - late;
          const r = next() % 4;
          const o: Observation =
            r === 0
              ? ended(at, 1 + (next() % 5000), next() % 5 !== 0, next() % 2 ? "w1" : "w2")
              : r === 1
                ? { kind: "dispatched", at, queueWaitMs: next() % 900 }
                : r === 2
                  ? { kind: "finished", at, outcome: next() % 3 ? "accepted" : "failed" }
                  : { kind: "retry", at };
          w.observe(o, now);
        }
        // Snapshots are not taken every second: the span sometimes jumps several slots.
        if (pauses && t % 40 < 30) w.expire(now);
        else if (t % 11 === 0 || t % 17 === 0) {
          w.expire(now);
          const running = w.recent(now, span);
          const to = w.slotStart(now) + 5_000;
          const fresh = w.aggregate(to - span, to);
          expect(running.counts).toEqual(fresh.counts);
          expect(summarize(running.exec)).toEqual(summarize(fresh.exec));
          expect(summarize(running.queueWait)).toEqual(summarize(fresh.queueWait));
          for (const id of ["w1", "w2"]) {
            const a = running.workers.get(id);
            const b = fresh.workers.get(id);
            expect([a?.ended ?? 0, a?.failed ?? 0]).toEqual([b?.ended ?? 0, b?.failed ?? 0]);
            expect(summarize(a?.exec ?? null)).toEqual(summarize(b?.exec ?? null));
          }
        }
      }
    },
  );

  it("refuses a slot length that does not divide a minute", () => {
    expect(() => new SlotWindow(7_000, 600_000)).toThrow(/divide a minute/);
  });
});

describe("HDR histograms as stored in rollups", () => {
  it("survive encoding and merge into the exact percentiles of the union", () => {
    const a = newHistogram();
    const b = newHistogram();
    for (let i = 1; i <= 50; i++) a.recordValue(i);
    for (let i = 51; i <= 100; i++) b.recordValue(i);
    const merged = newHistogram();
    merged.add(decodeHistogram(encodeHistogram(a) as string));
    merged.add(decodeHistogram(encodeHistogram(b) as string));
    expect(summarize(merged)).toEqual({ count: 100, p50: 50, p95: 95, p99: 99 });
    expect(encodeHistogram(newHistogram())).toBeNull();
  });
});

describe("task events to observations", () => {
  const task = "7b0a8f5e-7a51-4c5e-9a55-5a3c5f0d2b11";
  let seq = 0;
  const ev = (at: number, e: Partial<TaskEventDto>): TaskEventDto => ({
    seq: String(++seq),
    taskId: task,
    type: "state_changed",
    fromState: null,
    toState: null,
    actor: "system",
    data: {},
    createdAt: new Date(at),
    ...e,
  });
  const events: TaskEventDto[] = [
    ev(sec(0), { type: "created", toState: "queued" }),
    ev(sec(2), { fromState: "queued", toState: "running", data: { name: "dispatch", attempt: 1 } }),
    ev(sec(3), { type: "attempt_try_failed", data: { attempt: 1, try: 1, retryInMs: 40 } }),
    ev(sec(4), { type: "attempt_try_failed", data: { attempt: 1, try: 2, retryInMs: null } }),
    ev(sec(5), { fromState: "running", toState: "queued", data: { name: "requeue", attempt: 1 } }),
    ev(sec(6), { fromState: "queued", toState: "running", data: { name: "dispatch", attempt: 2 } }),
    ev(sec(9), { fromState: "running", toState: "accepted", data: { name: "verdict", attempt: 2 } }),
    ev(sec(20), { type: "log", data: { attempt: 2, line: "noise" } }),
    ev(sec(30), { fromState: "queued", toState: "running", data: { name: "dispatch", attempt: 3 } }),
    ev(sec(99), { fromState: "running", toState: "failed", data: { name: "fail", attempt: 3, recovered: true } }),
  ];
  const attempts = [
    {
      taskId: task,
      number: 1,
      workerId: "w1",
      state: "failed",
      queuedAt: new Date(sec(0)),
      startedAt: new Date(sec(2)),
      finishedAt: new Date(sec(5)),
    },
    {
      taskId: task,
      number: 2,
      workerId: "w2",
      state: "completed",
      queuedAt: new Date(sec(5)),
      startedAt: new Date(sec(6)),
      finishedAt: new Date(sec(9)),
    },
    {
      taskId: task,
      number: 3,
      workerId: "w2",
      state: "lost",
      queuedAt: new Date(sec(10)),
      startedAt: new Date(sec(30)),
      finishedAt: new Date(sec(99)),
    },
  ];

  it("names each attempt whose row is needed once", () => {
    expect(attemptKeys(events)).toEqual([
      { taskId: task, number: 1 },
      { taskId: task, number: 2 },
      { taskId: task, number: 3 },
    ]);
  });

  it("derives dispatch waits, attempt ends, retries and outcomes; a lost attempt has no execution time", () => {
    expect(toObservations(events, attempts)).toEqual([
      { kind: "dispatched", at: sec(2), queueWaitMs: 2000 },
      { kind: "retry", at: sec(3) },
      { kind: "attempt_ended", at: sec(5), workerId: "w1", ok: false, executionMs: 3000 },
      { kind: "dispatched", at: sec(6), queueWaitMs: 1000 },
      { kind: "finished", at: sec(9), outcome: "accepted" },
      { kind: "attempt_ended", at: sec(9), workerId: "w2", ok: true, executionMs: 3000 },
      { kind: "dispatched", at: sec(30), queueWaitMs: 20_000 },
      { kind: "finished", at: sec(99), outcome: "failed" },
      { kind: "attempt_ended", at: sec(99), workerId: "w2", ok: false, executionMs: null },
    ]);
  });

  it("still counts an attempt end whose row is gone (task deleted), without worker or time", () => {
    const obs = toObservations([events[6] as TaskEventDto], []);
    expect(obs).toEqual([
      { kind: "finished", at: sec(9), outcome: "accepted" },
      { kind: "attempt_ended", at: sec(9), workerId: null, ok: true, executionMs: null },
    ]);
  });
});

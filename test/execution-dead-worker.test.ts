import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TaskSpecInput } from "../src/shared/task-spec.js";
import { TERMINAL_STATES } from "../src/shared/task-state.js";
import { DATABASES } from "./helpers/databases.js";
import {
  deadWorkerUrl,
  type EngineApp,
  type FaultWorker,
  type FaultWorkerOptions,
  startEngineApp,
  startFaultWorker,
  waitFor,
} from "./helpers/fault-worker.js";

/**
 * Workers that fail safely, end to end on the real server: a dead worker beside a healthy one
 * costs no task, its breaker opens, dispatch stops sending to it; the task's deadline is not
 * blamed on the worker; a worker's Retry-After is honoured.
 */
describe.each(DATABASES)("workers that fail safely on %s", (kind) => {
  let s: EngineApp;
  const fakes: FaultWorker[] = [];

  beforeAll(async () => {
    // Health is checked at registration only (the next poll is an hour away): the dead worker
    // registered while alive stays "ok" in the database, so only its breaker can keep work from it.
    s = await startEngineApp(kind, { WORKER_HEALTH_INTERVAL_MS: String(3_600_000) });
  });
  afterAll(async () => {
    await s?.stop();
    await Promise.all(fakes.map((f) => f.close()));
  });

  async function fake(opts: FaultWorkerOptions = {}) {
    const f = await startFaultWorker(opts);
    fakes.push(f);
    return f;
  }
  const register = (name: string, url: string, capability: string, maxConcurrency = 4) =>
    s.http.workers.register.mutate({ name, url, capabilities: [capability], maxConcurrency });
  const health = (id: string, want: string) =>
    waitFor(
      `worker ${id}'s health to be ${want}`,
      () => s.http.workers.get.query({ id }),
      (w) => w.health === want,
    );
  const create = (capability: string, n: number, extra: Partial<TaskSpecInput> = {}) =>
    Promise.all(
      Array.from({ length: n }, (_, i) =>
        s.http.tasks.create
          .mutate({ title: `${capability} ${i}`, capability, input: { script: "true" }, ...extra })
          .then((t) => t.id),
      ),
    );
  const allSettled = (ids: string[]) =>
    waitFor(
      `${ids.length} tasks to settle`,
      () => s.db.prisma.task.findMany({ where: { id: { in: ids } }, select: { id: true, state: true } }),
      (rows) => rows.length === ids.length && rows.every((r) => TERMINAL_STATES.includes(r.state as never)),
      150_000,
    );
  const attemptsOn = (workerId: string, ids: string[]) =>
    s.db.prisma.attempt.count({ where: { workerId, taskId: { in: ids } } });

  it("one dead worker (connection refused) and one healthy, 50 tasks: all accepted, the dead one's breaker opens", {
    timeout: 180_000,
  }, async () => {
    // Alive when registered (health ok), then its process is gone: every connection is refused.
    const doomed = await fake();
    const dead = await register("a-dead", doomed.url, "dual");
    await health(dead.id, "ok");
    await doomed.close();
    const healthy = await register("b-healthy", (await fake()).url, "dual");
    await health(healthy.id, "ok");

    const ids = await create("dual", 50);
    const rows = await allSettled(ids);
    expect(rows.filter((r) => r.state !== "accepted")).toEqual([]);

    const deadNow = await s.http.workers.get.query({ id: dead.id });
    // Open, or half-open while a probe fails again: never closed while the worker is gone.
    expect(deadNow.breaker.state).not.toBe("closed");
    expect(deadNow.lastError).toContain("connection refused");
    const opened = await s.db.prisma.taskEvent.findMany({ where: { type: "worker_breaker" } });
    expect(opened.some((e) => (e.data as { worker?: string; to?: string }).to === "open")).toBe(true);
    // Only its first slots' worth of attempts ever went there: then its breaker was open.
    expect(await attemptsOn(dead.id, ids)).toBeLessThanOrEqual(4);
    expect(await attemptsOn(healthy.id, ids)).toBeGreaterThanOrEqual(50);
    // Its failures cost no task an attempt: an attempt ended by an open breaker is not the task's fault.
    const counted = await s.db.prisma.task.count({ where: { id: { in: ids }, failures: { gt: 0 } } });
    expect(counted).toBe(0);
  });

  it("a worker whose health is down gets no work at all beside a healthy one", { timeout: 120_000 }, async () => {
    const down = await register("c-down", await deadWorkerUrl(), "down-or-not");
    await health(down.id, "down");
    const healthy = await register("d-healthy", (await fake()).url, "down-or-not");
    await health(healthy.id, "ok");
    const ids = await create("down-or-not", 20);
    const rows = await allSettled(ids);
    expect(rows.filter((r) => r.state !== "accepted")).toEqual([]);
    expect(await attemptsOn(down.id, ids)).toBe(0);
    // Down before the task exists (a worker not yet checked may be tried).
    await register("e-down-only", await deadWorkerUrl(), "only-down").then((w) => health(w.id, "down"));
    const waiting = await s.http.tasks.create.mutate({ title: "only down", capability: "only-down", input: {} });
    const reason = await waitFor(
      "a waiting reason naming the health",
      () => s.db.prisma.task.findUniqueOrThrow({ where: { id: waiting.id }, select: { waitingReason: true } }),
      (t) => (t.waitingReason ?? "").includes("health check down"),
    );
    expect(reason.waitingReason).toBe(
      'Every worker with "only-down" is unavailable (e-down-only: health check down); waiting for one to recover.',
    );
    await s.http.tasks.cancel.mutate({ id: waiting.id, reason: "done" });
  });

  it("the task's deadline passing neither trips the worker's breaker nor becomes its last error", async () => {
    const slow = await fake({ durationMs: 60_000 });
    const w = await register("f-slow", slow.url, "slow", 2);
    await health(w.id, "ok");
    // Tier 2 here: two attempts, each cut off by the one-second budget (the idle timeout is 5 s).
    const [id] = await create("slow", 1, { budget: { maxDurationSec: 1 } });
    await allSettled([id as string]);
    const task = await s.db.prisma.task.findUniqueOrThrow({ where: { id: id as string } });
    expect(task.state).toBe("failed");
    const attempts = await s.db.prisma.attempt.findMany({
      where: { taskId: id as string },
      orderBy: { number: "asc" },
    });
    expect(attempts.map((a) => a.error)).toEqual([
      // The agency gave the attempt up: the worker is told to stop it, so the next attempt never runs beside it.
      "The task's deadline of 1 s (budget.maxDurationSec) passed. Worker told to stop: confirmed (canceled).",
      "The task's deadline of 1 s (budget.maxDurationSec) passed. Worker told to stop: confirmed (canceled).",
    ]);
    const after = await s.http.workers.get.query({ id: w.id });
    expect(after.breaker.state).toBe("closed");
    expect(after.recent.failures).toBe(0);
    expect(after.lastError).toBeNull();
    // Only one request per attempt: a deadline is not retried.
    expect(slow.requests).toHaveLength(2);
  });

  it("a 503 with Retry-After: 1 is retried no sooner than asked, and the wait is recorded", async () => {
    const f = await fake({ script: ["503"], retryAfter: "1" });
    const w = await register("g-busy", f.url, "busy");
    await health(w.id, "ok");
    const [id] = await create("busy", 1);
    await allSettled([id as string]);
    const events = await s.db.prisma.taskEvent.findMany({ where: { taskId: id as string }, orderBy: { seq: "asc" } });
    const failed = events.filter((e) => e.type === "attempt_try_failed");
    expect(failed.map((e) => e.data)).toEqual([
      expect.objectContaining({ try: 1, status: 503, retryInMs: 1000, worker: "g-busy" }),
    ]);
    // The try failure is recorded before the task is accepted, on the same attempt, in two tries.
    const accepted = events.findIndex((e) => e.toState === "accepted");
    expect(events.indexOf(failed[0] as (typeof events)[number])).toBeLessThan(accepted);
    const attempts = await s.db.prisma.attempt.findMany({ where: { taskId: id as string } });
    expect(attempts.map((a) => [a.state, a.tries])).toEqual([["completed", 2]]);
    expect(f.requests).toHaveLength(2);
  });
});

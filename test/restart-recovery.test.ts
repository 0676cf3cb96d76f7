import { afterEach, describe, expect, it } from "vitest";
import { TERMINAL_STATES } from "../src/shared/task-state.js";
import { createWorker, type Worker } from "../src/worker/sdk.js";
import { DATABASES, POSTGRES_URL } from "./helpers/databases.js";
import { type FaultWorker, okResult, startFaultWorker, waitFor } from "./helpers/fault-worker.js";
import { type Api, ServerHome, TcpProxy } from "./helpers/server-process.js";

/**
 * Restarts cost nothing: a server process stopped (SIGTERM) or killed (SIGKILL) while a task runs on a
 * worker that outlives it leaves the attempt to the next process, which re-attaches to it by its
 * Idempotency-Key: the task completes with attempt 1, no attempt lost or counted, the work ran once.
 * A crash loop ends at RECOVERY_LIMIT. Results that arrive while Postgres is unreachable are stored
 * when it is back.
 */

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

const settled = (api: Api, id: string, timeoutMs = 120_000) =>
  waitFor(
    `task ${id} to settle`,
    () => api.tasks.get.query({ id }),
    (t) => TERMINAL_STATES.includes(t.state),
    timeoutMs,
  );

const eventsOf = async (api: Api, taskId: string) =>
  (await api.tasks.events.query({ taskId, limit: 1000 })).items as { type: string; data: Record<string, unknown> }[];

async function setup(kind: "pglite" | "postgres", env: Record<string, string>, durationMs: number) {
  const worker = await startFaultWorker({ durationMs });
  cleanups.push(() => worker.close());
  const home = new ServerHome(kind, {
    // An external worker that survives the server (not the built-in reference worker, which dies with it).
    WORKERS: `outside=${worker.url}|script|4`,
    ...env,
  });
  cleanups.push(() => home.dispose());
  return { worker, home };
}

/** Creates a task and waits until the worker is running it. */
async function runningTask(api: Api, worker: FaultWorker, title: string): Promise<{ id: string; key: string }> {
  const { id } = await api.tasks.create.mutate({ title, input: { script: "true" } });
  await waitFor(
    "the worker to start the task",
    async () => worker.requests.filter((r) => r.taskId === id).length,
    (n) => n >= 1,
  );
  return { id, key: `${id}:1` };
}

describe.each(DATABASES)("restarts cost nothing on %s", (kind) => {
  it("SIGTERM during a run: drained for the grace, handed back, re-attached by the next process with the same key", async () => {
    // The work outlasts the grace: the attempt is handed back with its work still running at the worker.
    const { worker, home } = await setup(kind, { SHUTDOWN_GRACE_MS: "300" }, 6_000);
    const first = await home.start();
    const { id, key } = await runningTask(first.api, worker, "survives SIGTERM");

    const code = await home.stop();
    expect(code, first.lines().join("\n")).toBe(0);
    expect(first.lines().some((l) => l.includes("handed back"))).toBe(true);
    // Handed back without a /cancel: the work went on at the worker.
    expect(worker.cancels).toEqual([]);

    const second = await home.start();
    const task = await settled(second.api, id);
    expect(task.state).toBe("accepted");
    expect(task.failures).toBe(0);
    expect(task.attempts.map((a) => [a.number, a.state])).toEqual([[1, "completed"]]);
    // The worker saw the same Idempotency-Key twice and ran the work once.
    expect(worker.requests.filter((r) => r.taskId === id).map((r) => `${r.taskId}:${r.attempt}`)).toEqual([key, key]);
    expect(worker.executions.get(key)).toBe(1);
    const events = await eventsOf(second.api, id);
    expect(events.filter((e) => e.type === "attempt_handed_back")).toHaveLength(1);
    const reattached = events.filter((e) => e.type === "attempt_reattached");
    expect(reattached).toHaveLength(1);
    // A hand-back is not a crash: it does not count toward RECOVERY_LIMIT.
    expect(reattached[0]?.data).toMatchObject({ attempt: 1, handedBack: true, recovery: 0 });
    expect(events.some((e) => e.type === "attempt_lost")).toBe(false);
  }, 400_000);

  it("SIGKILL during a run: the next process re-attaches once the lease expires, with the same key", async () => {
    const { worker, home } = await setup(kind, { LEASE_MS: "1500", RECOVERY_INTERVAL_MS: "300" }, 5_000);
    const first = await home.start();
    const tasks = [
      await runningTask(first.api, worker, "survives SIGKILL 1"),
      await runningTask(first.api, worker, "survives SIGKILL 2"),
    ];
    await home.kill();

    const second = await home.start();
    for (const { id, key } of tasks) {
      const task = await settled(second.api, id);
      expect(task.state).toBe("accepted");
      expect(task.failures).toBe(0);
      expect(task.attempts.map((a) => [a.number, a.state])).toEqual([[1, "completed"]]);
      expect(worker.requests.filter((r) => r.taskId === id)).toHaveLength(2);
      expect(worker.requests.filter((r) => r.taskId === id).every((r) => r.attempt === 1)).toBe(true);
      expect(worker.executions.get(key)).toBe(1);
      const reattached = (await eventsOf(second.api, id)).filter((e) => e.type === "attempt_reattached");
      expect(reattached.map((e) => e.data)).toMatchObject([{ attempt: 1, handedBack: false, recovery: 1 }]);
    }
    expect([...worker.maxConcurrentPerTask.values()].every((n) => n === 1)).toBe(true);
    expect(worker.cancels).toEqual([]);
  }, 400_000);

  it("a crash loop stops at RECOVERY_LIMIT: the attempt is lost with an error that says so", async () => {
    const { worker, home } = await setup(
      kind,
      {
        LEASE_MS: "1500",
        RECOVERY_INTERVAL_MS: "300",
        RECOVERY_LIMIT: "1",
        // One attempt at tier 2: the lost attempt fails the task, so the test ends there.
        RETRY_POLICY: JSON.stringify({ 2: { attempts: 1, tries: 1, tryTimeoutMs: 120_000 } }),
      },
      120_000,
    );
    const first = await home.start();
    const { id, key } = await runningTask(first.api, worker, "crash loop");
    await home.kill();

    // Crash 2: right after the next process re-attached (recovery 1 of 1).
    await home.start();
    await waitFor(
      "the re-attach to reach the worker",
      async () => worker.requests.filter((r) => r.taskId === id).length,
      (n) => n >= 2,
    );
    await home.kill();

    const third = await home.start();
    const task = await settled(third.api, id);
    expect(task.state).toBe("failed");
    const [attempt] = task.attempts;
    expect(task.attempts).toHaveLength(1);
    expect(attempt?.state).toBe("lost");
    expect(attempt?.error).toContain("re-attached 1 time (RECOVERY_LIMIT 1)");
    expect(attempt?.error).toContain("crash loop");
    expect(task.stateReason).toContain("Attempt 1 was lost and no attempts are left");
    // Still one run of the work, now told to stop.
    expect(worker.executions.get(key)).toBe(1);
    expect(worker.cancels.map((c) => `${c.taskId}:${c.attempt}`)).toEqual([key]);
  }, 500_000);
});

describe.skipIf(!POSTGRES_URL)("a Postgres outage while results come back (Postgres only)", () => {
  // PGlite is embedded in the server process: it cannot become unreachable while the server runs.
  it("holds the results, stores them when the database is back, and logs the outage as two JSON lines", async () => {
    const proxy = new TcpProxy("127.0.0.1", 5432);
    await proxy.start();
    cleanups.push(() => proxy.close());
    // A worker whose results wait for the test's word: they come back while the database is cut off.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const ran = new Map<string, number>();
    const sdk: Worker = createWorker({
      capabilities: ["script"],
      handle: async ({ request }) => {
        const key = `${request.taskId}:${request.attempt}`;
        ran.set(key, (ran.get(key) ?? 0) + 1);
        await gate;
        return okResult(request);
      },
    });
    const { url: workerUrl } = await sdk.listen(0, "127.0.0.1");
    cleanups.push(() => sdk.close());
    const target = new URL(POSTGRES_URL as string);
    target.host = `127.0.0.1:${proxy.port}`;
    const home = new ServerHome("postgres", {
      DATABASE_URL: target.toString(),
      WORKERS: `gated=${workerUrl}|script|4`,
      LEASE_MS: "1500",
      RECOVERY_INTERVAL_MS: "300",
      LOG_LEVEL: "debug",
    });
    cleanups.push(() => home.dispose());
    const server = await home.start();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push((await server.api.tasks.create.mutate({ title: `outage ${i}`, input: { script: "true" } })).id);
    }
    await waitFor(
      "the worker to run all three",
      async () => sdk.inFlight(),
      (n) => n === 3,
    );

    const before = server.lines().length;
    await proxy.cut();
    const unreachable = (l: string) => l.includes('"msg":"the database is unreachable');
    const reachable = (l: string) => l.includes('"msg":"the database is reachable again"');
    await waitFor(
      "the server to notice",
      async () => server.lines().filter(unreachable).length,
      (n) => n === 1,
      // Its next lease renewal (every 500 ms) finds the database gone; a loaded CI machine may take a while.
      60_000,
    );
    release();
    await waitFor(
      "the worker to answer",
      async () => sdk.inFlight(),
      (n) => n === 0,
    );
    // Each result is held by the run that received it (a debug line each), its lease renewed once the database is back.
    await waitFor(
      "the three results to be held",
      async () => server.lines().filter((l) => l.includes("holding an attempt's end")).length,
      (n) => n === 3,
    );
    await proxy.restore();

    for (const id of ids) {
      const task = await settled(server.api, id);
      expect(task.state).toBe("accepted");
      expect(task.attempts.map((a) => [a.number, a.state])).toEqual([[1, "completed"]]);
      expect(ran.get(`${id}:1`)).toBe(1);
      // Stored by the run that received it, not fetched again by a recovery.
      const events = await eventsOf(server.api, id);
      expect(events.filter((e) => e.type === "attempt_reattached")).toEqual([]);
    }
    const lines = server.lines();
    expect(lines.filter(unreachable)).toHaveLength(1);
    expect(lines.filter(reachable)).toHaveLength(1);
    for (const l of [...lines.filter(unreachable), ...lines.filter(reachable)])
      expect(() => JSON.parse(l)).not.toThrow();
    const during = lines.slice(before);
    // No stack traces, no plain Node warnings: every line is JSON.
    expect(during.filter((l) => l.includes("    at ") || l.includes('"stack"'))).toEqual([]);
    expect(during.filter((l) => l.trim() && !l.startsWith("{"))).toEqual([]);
  }, 400_000);
});

import { createTRPCClient, httpBatchLink, TRPCClientError } from "@trpc/client";
import superjson from "superjson";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AppRouter } from "../src/server/router.js";
import { createServices } from "../src/server/services.js";
import type { TaskSpecInput } from "../src/shared/task-spec.js";
import { TERMINAL_STATES } from "../src/shared/task-state.js";
import { WORKER_HISTORY_KEEP } from "../src/shared/worker-detail.js";
import { DATABASES } from "./helpers/databases.js";
import {
  type EngineApp,
  FAST_ENV,
  type FaultWorker,
  type FaultWorkerOptions,
  startEngineApp,
  startFaultWorker,
  waitFor,
} from "./helpers/fault-worker.js";
import { tokenFor } from "./helpers/server.js";
import { silentLog, testConfig } from "./helpers/services.js";
import { withEvents } from "./helpers/task-events.js";
import { type ReferenceWorkerProcess, startReferenceWorkerProcess } from "./helpers/worker.js";

const TOKEN = "worker-detail-reference-token";
/** Each test runs real tasks on real workers: minutes on a machine shared with other test runs. */
const SLOW = 180_000;

async function refusal(p: Promise<unknown>) {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TRPCClientError);
  return err as TRPCClientError<AppRouter>;
}

describe.each(DATABASES)("worker detail: pause, drain, trip with a reason, history and activity on %s", (kind) => {
  let s: EngineApp;
  let reference: ReferenceWorkerProcess;
  const fakes: FaultWorker[] = [];
  let n = 0;

  beforeAll(async () => {
    reference = await startReferenceWorkerProcess({ env: { WORKER_TOKEN: TOKEN, WORKER_MAX_CONCURRENCY: "4" } });
    s = await startEngineApp(kind);
  }, SLOW);
  afterAll(async () => {
    await s?.stop();
    await reference?.stop();
    await Promise.all(fakes.map((f) => f.close()));
  });

  async function fault(capability: string, opts: FaultWorkerOptions = {}, name = `fw${++n}`) {
    const fake = await startFaultWorker(opts);
    fakes.push(fake);
    const worker = await s.http.workers.register.mutate({
      name,
      url: fake.url,
      capabilities: [capability],
      maxConcurrency: 2,
    });
    return { fake, worker };
  }
  const task = (capability: string, extra: Partial<TaskSpecInput> = {}) =>
    s.http.tasks.create.mutate({ title: `task for ${capability}`, capability, input: { script: "true" }, ...extra });
  const get = (id: string) => withEvents(s.http, { id });
  const settled = (id: string) =>
    waitFor(
      `task ${id} to settle`,
      () => get(id),
      (t) => TERMINAL_STATES.includes(t.state),
    );
  const auditOf = (workerId: string) =>
    s.db.query<{ action: string; actor_id: string; before: unknown; after: Record<string, unknown> }>(
      `SELECT action, actor_id, before, after FROM audit_entries WHERE resource_type = 'worker' AND resource_id = $1 ORDER BY id`,
      [workerId],
    );
  const history = async (id: string) => (await s.http.workers.history.query({ id, limit: 100 })).items;
  /** Without health changes: on a loaded machine a health check may time out (a real, recorded change). */
  const adminHistory = async (id: string) => (await history(id)).filter((e) => e.kind !== "health");

  it(
    "pause: the paused worker gets no new attempt, the task waits saying so, another worker takes it; resume",
    async () => {
      const { fake: a, worker: wa } = await fault("cap-pause", {}, "pause-a");
      const paused = await s.http.workers.pause.mutate({ id: wa.id, reason: "  maintenance window  " });
      expect(paused.dispatch).toMatchObject({ state: "paused", reason: "maintenance window", changedBy: "admin" });

      const first = await task("cap-pause");
      const waiting = await waitFor(
        "the task to wait behind the paused worker",
        () => get(first.id),
        (t) => (t.waitingReason ?? "").includes("pause-a: paused by an admin"),
      );
      expect(waiting.state).toBe("queued");
      expect(a.requests).toHaveLength(0);

      const { fake: b } = await fault("cap-pause", {}, "pause-b");
      const done = await settled(first.id);
      expect(done.state).toBe("accepted");
      expect(done.attempts.map((x) => x.worker?.name)).toEqual(["pause-b"]);
      const more = await Promise.all([task("cap-pause"), task("cap-pause"), task("cap-pause")]);
      for (const t of more) expect((await settled(t.id)).attempts.map((x) => x.worker?.name)).toEqual(["pause-b"]);
      expect(a.requests).toHaveLength(0);
      expect(b.requests).toHaveLength(4);

      // A pause of a paused worker, or a resume of an active one, is refused and changes nothing.
      const again = await refusal(s.http.workers.pause.mutate({ id: wa.id }));
      expect(again.data?.code).toBe("CONFLICT");
      expect(again.message).toBe(
        "Worker pause-a is paused; pause applies to a worker that is active or draining or drained.",
      );

      const resumed = await s.http.workers.resume.mutate({ id: wa.id, reason: "window over" });
      expect(resumed.dispatch.state).toBe("active");
      const notPaused = await refusal(s.http.workers.resume.mutate({ id: wa.id }));
      expect(notPaused.data?.code).toBe("CONFLICT");
      // Idle and first by name, A is served first again.
      const [c1, c2, c3] = await Promise.all([task("cap-pause"), task("cap-pause"), task("cap-pause")]);
      const names = await Promise.all([c1, c2, c3].map(async (t) => (await settled(t!.id)).attempts[0]?.worker?.name));
      expect(names).toContain("pause-a");
      expect(a.requests.length).toBeGreaterThan(0);

      const events = await history(wa.id);
      expect(events.map((e) => [e.kind, e.from, e.to, e.actor, e.reason])).toEqual(
        expect.arrayContaining([
          ["resume", "paused", "active", "admin", "window over"],
          ["pause", "active", "paused", "admin", "maintenance window"],
        ]),
      );
      const audit = (await auditOf(wa.id)).filter((e) => e.action !== "worker.register");
      expect(audit.map((e) => [e.action, e.actor_id, e.after])).toEqual([
        ["worker.pause", "admin", { dispatchState: "paused", reason: "maintenance window" }],
        ["worker.resume", "admin", { dispatchState: "active", reason: "window over" }],
      ]);
    },
    SLOW,
  );

  it(
    "drain: the running attempt on the reference worker finishes, nothing new is sent, the worker becomes drained; resume",
    async () => {
      const w = await s.http.workers.register.mutate({
        name: "reference",
        url: reference.url,
        capabilities: ["script"],
        maxConcurrency: 4,
        token: TOKEN,
      });
      const long = await task("script", { input: { script: "echo started; sleep 2; echo done > out.txt" } });
      await waitFor(
        "the long task to run on the reference worker",
        () => s.http.workers.get.query({ id: w.id }),
        (x) => x.inFlight === 1,
      );
      const draining = await s.http.workers.drain.mutate({ id: w.id, reason: "host reboot" });
      expect(draining.dispatch.state).toBe("draining");
      expect(draining.inFlight).toBe(1);

      const next = await task("script");
      await waitFor(
        "the next task to wait behind the draining worker",
        () => get(next.id),
        (t) => (t.waitingReason ?? "").includes("reference: draining"),
      );
      const drained = await waitFor(
        "the worker to be drained",
        () => s.http.workers.get.query({ id: w.id }),
        (x) => x.dispatch.state === "drained",
      );
      expect(drained.inFlight).toBe(0);
      const finished = await get(long.id);
      expect(finished.state).toBe("accepted");
      expect(finished.attempts.map((a) => [a.state, a.worker?.name])).toEqual([["completed", "reference"]]);
      // Waiting reasons are refreshed on their own beat (a dispatch pass), so the new one is waited for.
      const stillWaiting = await waitFor(
        "the waiting reason to name the drained worker",
        () => get(next.id),
        (t) => (t.waitingReason ?? "").includes("reference: drained by an admin"),
      );
      expect(stillWaiting.state).toBe("queued");
      expect(stillWaiting.attempts).toHaveLength(0);
      const twice = await refusal(s.http.workers.drain.mutate({ id: w.id }));
      expect(twice.data?.code).toBe("CONFLICT");

      await s.http.workers.resume.mutate({ id: w.id });
      expect((await settled(next.id)).attempts.map((a) => a.worker?.name)).toEqual(["reference"]);

      const events = await adminHistory(w.id);
      expect(events.map((e) => [e.kind, e.from, e.to, e.actor])).toEqual([
        ["resume", "drained", "active", "admin"],
        ["drained", "draining", "drained", null],
        ["drain", "active", "draining", "admin"],
      ]);
      expect(events[2]?.reason).toBe("host reboot");

      // The worker's page: the tasks it ran, newest first, paged; its activity bucketed in SQL.
      const page1 = await s.http.workers.attempts.query({ id: w.id, limit: 1 });
      expect(page1.items.map((a) => a.task.id)).toEqual([next.id]);
      expect(page1.nextCursor).not.toBeNull();
      const page2 = await s.http.workers.attempts.query({ id: w.id, limit: 1, cursor: page1.nextCursor });
      expect(page2.items.map((a) => [a.task.id, a.state, a.number])).toEqual([[long.id, "completed", 1]]);
      expect(page2.items[0]?.durationMs).toBeGreaterThanOrEqual(2_000);
      expect(page2.nextCursor).toBeNull();
      const badCursor = await refusal(s.http.workers.attempts.query({ id: w.id, cursor: "12_nope" }));
      expect(badCursor.data?.code).toBe("BAD_REQUEST");

      const activity = await s.http.workers.activity.query({ id: w.id, range: "1h" });
      expect(activity.buckets).toHaveLength(60);
      const used = activity.buckets.filter((b) => b.attempts > 0);
      expect(used.reduce((sum, b) => sum + b.attempts, 0)).toBe(2);
      expect(used.every((b) => b.failed === 0 && b.failedShare === 0)).toBe(true);
      const slowest = Math.max(...used.map((b) => b.p95Ms ?? 0));
      expect(slowest).toBeGreaterThanOrEqual(2_000);
    },
    SLOW,
  );

  it(
    "records a failing worker's breaker changes (with the task that opened it) and its health going down",
    async () => {
      const { fake, worker } = await fault("cap-failing", { afterwards: "503", health: "degraded" }, "failing");
      const created = await task("cap-failing");
      const opened = await waitFor(
        "the breaker's opening in the worker's history",
        () => history(worker.id),
        (events) => events.some((e) => e.kind === "breaker" && e.to === "open"),
      );
      const open = opened.find((e) => e.kind === "breaker" && e.to === "open");
      expect(open).toMatchObject({ from: "closed", taskId: created.id, actor: null });
      expect(open?.reason).toContain("3 failures within 60000 ms; last:");
      expect(open?.reason).toContain("HTTP 503");

      fake.set({ health: "503" });
      const down = await waitFor(
        "the health check's change in the history",
        () => history(worker.id),
        (events) => events.some((e) => e.kind === "health" && e.to === "down"),
      );
      // The 503, or a check that timed out first on a loaded machine: the worker is down either way.
      expect(down.find((e) => e.kind === "health" && e.to === "down")?.reason).toMatch(/HTTP 503|no answer within/);

      const activity = await s.http.workers.activity.query({ id: worker.id, range: "24h" });
      const failed = activity.buckets.reduce((sum, b) => sum + b.failed, 0);
      expect(failed).toBeGreaterThanOrEqual(1);
      expect(activity.buckets.find((b) => b.failed > 0)?.failedShare).toBe(1);
      await s.http.tasks.cancel.mutate({ id: created.id, reason: "its worker is failing" }).catch(() => undefined);
    },
    SLOW,
  );

  it(
    "trips only with a reason (audited with it); bad input changes nothing; reset with a reason",
    async () => {
      const { worker } = await fault("cap-trip", {}, "trip-me");
      const before = await auditOf(worker.id);
      const missing = await refusal(s.http.workers.trip.mutate({ id: worker.id } as never));
      expect(missing.data?.code).toBe("BAD_REQUEST");
      const blank = await refusal(s.http.workers.trip.mutate({ id: worker.id, reason: "   " }));
      expect(blank.data?.code).toBe("BAD_REQUEST");
      expect(blank.message).toContain("Give a reason for tripping the breaker");
      const long = await refusal(s.http.workers.trip.mutate({ id: worker.id, reason: "x".repeat(501) }));
      expect(long.message).toContain("Reason must be at most 500 characters");
      const unknown = await refusal(
        s.http.workers.trip.mutate({ id: "00000000-0000-4000-8000-000000000000", reason: "gone" }),
      );
      expect(unknown.data?.code).toBe("NOT_FOUND");
      expect((await s.http.workers.get.query({ id: worker.id })).breaker.state).toBe("closed");
      expect(await auditOf(worker.id)).toEqual(before);
      expect(await adminHistory(worker.id)).toEqual([]);

      const tripped = await s.http.workers.trip.mutate({
        id: worker.id,
        reason: "answers with someone else's results",
      });
      expect(tripped.breaker.state).toBe("tripped");
      await s.http.workers.reset.mutate({ id: worker.id, reason: "fixed upstream" });
      const audit = (await auditOf(worker.id)).slice(before.length);
      expect(audit.map((e) => [e.action, e.actor_id, e.after])).toEqual([
        ["worker.trip", "admin", { tripped: true, reason: "answers with someone else's results" }],
        ["worker.reset", "admin", { tripped: false, reason: "fixed upstream" }],
      ]);
      expect((await adminHistory(worker.id)).map((e) => [e.kind, e.from, e.to, e.actor, e.reason])).toEqual([
        ["reset", "tripped", "closed", "admin", "fixed upstream"],
        ["trip", "closed", "tripped", "admin", "answers with someone else's results"],
      ]);
    },
    SLOW,
  );

  it(
    "refuses pause, drain, resume, trip and reset to viewers and operators",
    async () => {
      const { worker } = await fault("cap-roles", {}, "roles");
      for (const role of ["viewer", "operator"] as const) {
        const token = await tokenFor(s.services, `${role}-wd`, role);
        const api = createTRPCClient<AppRouter>({
          links: [
            httpBatchLink({
              url: `${s.url}/trpc`,
              transformer: superjson,
              headers: { authorization: `Bearer ${token}` },
            }),
          ],
        });
        for (const call of [
          () => api.workers.pause.mutate({ id: worker.id, reason: "no" }),
          () => api.workers.drain.mutate({ id: worker.id }),
          () => api.workers.resume.mutate({ id: worker.id }),
          () => api.workers.trip.mutate({ id: worker.id, reason: "no" }),
          () => api.workers.reset.mutate({ id: worker.id }),
        ]) {
          const err = await refusal(call());
          expect(err.data?.code).toBe("FORBIDDEN");
        }
        // Reading the page is a viewer's right.
        const seen = await api.workers.history.query({ id: worker.id });
        expect(seen.items.filter((e) => e.kind !== "health")).toEqual([]);
        expect((await api.workers.attempts.query({ id: worker.id })).items).toEqual([]);
      }
      expect((await s.http.workers.get.query({ id: worker.id })).dispatch.state).toBe("active");
      expect((await auditOf(worker.id)).map((e) => e.action)).toEqual(["worker.register"]);
    },
    SLOW,
  );

  it(
    `keeps the newest ${WORKER_HISTORY_KEEP} history rows per worker`,
    async () => {
      const { worker } = await fault("cap-history", {}, "history");
      // Disabled once checked: health polling leaves it alone, so only the rows below are written.
      await waitFor(
        "its first health check",
        () => s.http.workers.get.query({ id: worker.id }),
        (w) => w.healthCheckedAt !== null,
      );
      await s.http.workers.update.mutate({ id: worker.id, patch: { enabled: false } });
      const total = WORKER_HISTORY_KEEP + 5;
      for (let i = 0; i < total; i++) {
        await s.services.workers.history.record({
          workerId: worker.id,
          kind: "health",
          from: "ok",
          to: "ok",
          reason: `r${i}`,
        });
      }
      const [row] = await s.db.query<{ n: number; pruned: number; oldest: number }>(
        `SELECT count(*)::int AS n, count(*) FILTER (WHERE reason IN ('r0', 'r1', 'r2', 'r3', 'r4'))::int AS pruned,
              count(*) FILTER (WHERE reason = 'r5')::int AS oldest
         FROM worker_events WHERE worker_id = $1::uuid`,
        [worker.id],
      );
      expect(row).toEqual({ n: WORKER_HISTORY_KEEP, pruned: 0, oldest: 1 });
      const page = await s.http.workers.history.query({ id: worker.id, limit: 2 });
      expect(page.items.map((e) => e.reason)).toEqual([`r${total - 1}`, `r${total - 2}`]);
      const next = await s.http.workers.history.query({ id: worker.id, limit: 2, cursor: page.nextCursor });
      expect(next.items.map((e) => e.reason)).toEqual([`r${total - 3}`, `r${total - 4}`]);
    },
    SLOW,
  );
  // Last: it stops the first engine, so the restarted services are the only ones dispatching.
  it(
    "keeps the pause across a restart: new services on the same database honour it, and dispatch after resume",
    async () => {
      const { fake, worker } = await fault("cap-restart", {}, "restart-a");
      await s.http.workers.pause.mutate({ id: worker.id, reason: "kept" });
      await s.services.execution.stop();
      const other = await createServices(s.db, silentLog, testConfig({ ...FAST_ENV }));
      try {
        await other.start();
        expect((await other.workers.get(worker.id)).dispatch).toMatchObject({ state: "paused", reason: "kept" });
        expect((await other.workers.list()).find((x) => x.id === worker.id)?.dispatch.state).toBe("paused");
        const queued = await task("cap-restart");
        // Only the restarted engine dispatches now: its pass wrote this reason and sent the task nowhere.
        const waiting = await waitFor(
          "the restarted engine to hold the task back",
          () => get(queued.id),
          (t) => (t.waitingReason ?? "").includes("restart-a: paused by an admin"),
        );
        expect(waiting.attempts).toHaveLength(0);
        expect(fake.requests).toHaveLength(0);
        await s.http.workers.resume.mutate({ id: worker.id });
        expect((await settled(queued.id)).attempts.map((a) => a.worker?.name)).toEqual(["restart-a"]);
      } finally {
        await other.stop();
      }
    },
    SLOW,
  );
});

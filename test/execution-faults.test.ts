import { TRPCClientError } from "@trpc/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServices } from "../src/server/services.js";
import type { TaskSpecInput } from "../src/shared/task-spec.js";
import { TERMINAL_STATES } from "../src/shared/task-state.js";
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
import { silentLog, testConfig } from "./helpers/services.js";
import { withEvents } from "./helpers/task-events.js";

async function trpcError(p: Promise<unknown>) {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TRPCClientError);
  return err as TRPCClientError<never>;
}

describe.each(DATABASES)("execution faults on %s", (kind) => {
  let s: EngineApp;
  const fakes: FaultWorker[] = [];
  let n = 0;

  beforeAll(async () => {
    s = await startEngineApp(kind);
  });
  afterAll(async () => {
    await s?.stop();
    await Promise.all(fakes.map((f) => f.close()));
  });

  /** A fault worker registered under a capability of its own, so tests do not share workers. */
  async function worker(capability: string, opts: FaultWorkerOptions = {}, name = `w${++n}`) {
    const f = await startFaultWorker(opts);
    fakes.push(f);
    const w = await s.http.workers.register.mutate({
      name,
      url: f.url,
      capabilities: [capability],
      maxConcurrency: 2,
      ...(opts.token ? { token: opts.token } : {}),
    });
    return { fake: f, worker: w };
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

  it("retries 503 then succeeds: one attempt, three tries, with the bearer token and idempotency key", async () => {
    const { fake } = await worker("cap-503-once", { script: ["503", "503"], token: "tok-1" });
    const t = await settled((await task("cap-503-once")).id);
    expect(t.state).toBe("accepted");
    expect(t.attempts).toHaveLength(1);
    expect(t.attempts[0]?.tries).toBe(3);
    const retries = t.events.filter((e) => e.type === "attempt_try_failed");
    expect(retries.map((e) => e.data.status)).toEqual([503, 503]);
    expect(fake.authHeaders).toEqual(["Bearer tok-1", "Bearer tok-1", "Bearer tok-1"]);
    expect(fake.executions.get(`${t.id}:1`)).toBe(1);
  });

  it("always 503: the breaker opens, the task waits, a second worker takes over; the breaker half-opens and closes", async () => {
    // Degraded by its own /health: still sent work (a worker that is down is not), but no probe passes.
    const { fake: bad, worker: badW } = await worker("cap-flaky", { afterwards: "503", health: "degraded" });
    const created = await task("cap-flaky");
    const waiting = await waitFor(
      "the task to wait behind an open breaker",
      () => get(created.id),
      (t) => t.state === "queued" && (t.waitingReason ?? "").includes("circuit breaker"),
    );
    expect(waiting.events.some((e) => e.type === "worker_breaker" && e.data.to === "open")).toBe(true);
    expect(waiting.attempts[0]).toMatchObject({ state: "failed", tries: 3 });
    expect(waiting.attempts[0]?.error).toContain("HTTP 503");
    const listed = (await s.http.workers.list.query()).find((w) => w.id === badW.id);
    // Open, or already probing (half-open) after the short cool-down: not closed either way.
    expect(["open", "half_open"]).toContain(listed?.breaker.state);
    // The tries' 503s, or a probe's "reports itself degraded" once the cool-down is over.
    expect(listed?.lastError).toMatch(/HTTP 503|degraded/);
    const health = await s.http.system.health.query();
    if (!("workers" in health)) throw new Error("expected the signed-in health answer");
    expect(["open", "half_open"]).toContain(health.workers.find((w) => w.id === badW.id)?.breaker.state);

    await worker("cap-flaky", {}, "good-one");
    const done = await settled(created.id);
    expect(done.state).toBe("accepted");
    expect(done.attempts.map((a) => a.worker?.name)).toEqual([badW.name, "good-one"]);

    bad.set({ afterwards: "ok", health: "ok" });
    await waitFor(
      "the breaker to close after probes",
      () => s.http.workers.get.query({ id: badW.id }),
      (w) => w.breaker.state === "closed",
    );
    const events = await waitFor(
      "breaker events on the task that opened it",
      () => get(created.id),
      (t) => t.events.some((e) => e.type === "worker_breaker" && e.data.to === "closed"),
    );
    // Probes may fail while the worker is still unhealthy (open → half-open → open …); the episode
    // starts with the opening and ends with a half-open breaker closing.
    const changes = events.events.filter((e) => e.type === "worker_breaker").map((e) => e.data.to);
    expect(changes[0]).toBe("open");
    expect(changes.slice(-2)).toEqual(["half_open", "closed"]);
  });

  it("fails a worker that hangs past the try timeout, with the timeout named", async () => {
    const { fake } = await worker("cap-hang", { afterwards: "hang" });
    const t = await settled((await task("cap-hang", { riskTier: 3 })).id);
    expect(t.state).toBe("failed");
    expect(t.attempts[0]?.tries).toBe(2);
    expect(t.attempts[0]?.error).toMatch(/^No answer from worker \S+ for 1 s \(tier 3's idle timeout per try; /);
    expect(fake.requests.length).toBeLessThanOrEqual(2);
  });

  it("fails on malformed JSON and on a schema-invalid result with a clear error, and keeps serving", async () => {
    await worker("cap-malformed", { afterwards: "malformed" });
    await worker("cap-invalid", { afterwards: "invalid" });
    const [a, b] = await Promise.all([task("cap-malformed"), task("cap-invalid")]);
    const malformed = await settled(a.id);
    expect(malformed.state).toBe("failed");
    expect(malformed.attempts[0]?.error).toContain("malformed JSON");
    // Not retried within an attempt: a protocol error is not transient.
    expect(malformed.attempts.every((x) => x.tries === 1)).toBe(true);
    const invalid = await settled(b.id);
    expect(invalid.state).toBe("failed");
    expect(invalid.attempts[0]?.error).toMatch(/does not match protocol v1: status/);
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
  });

  it("retries a worker that dies mid-request (socket destroyed) and reports it when it keeps dying", async () => {
    await worker("cap-die-once", { script: ["destroy"] });
    const once = await settled((await task("cap-die-once")).id);
    expect(once.state).toBe("accepted");
    expect(once.attempts[0]?.tries).toBe(2);
    await worker("cap-die", { afterwards: "destroy" });
    const always = await settled((await task("cap-die", { riskTier: 3 })).id);
    expect(always.state).toBe("failed");
    expect(always.attempts[0]?.error).toContain("Could not reach worker");
  });

  it("streams NDJSON log and progress lines into task events before the verdict", async () => {
    await worker("cap-stream", { stream: true, durationMs: 50 });
    const t = await settled((await task("cap-stream")).id);
    expect(t.state).toBe("accepted");
    const types = t.events.map((e) => e.type);
    expect(types.indexOf("log")).toBeGreaterThan(-1);
    expect(types.indexOf("progress")).toBeGreaterThan(-1);
    expect(types.indexOf("log")).toBeLessThan(t.events.findIndex((e) => e.toState === "accepted"));
  });

  it("cancels a running task as unconfirmed when the worker ignores /cancel", async () => {
    const { fake } = await worker("cap-deaf", { durationMs: 60_000, ignoreCancel: true });
    const created = await task("cap-deaf");
    await waitFor(
      "it to run",
      () => get(created.id),
      (t) => t.state === "running",
    );
    const c = await s.http.tasks.cancel.mutate({ id: created.id, reason: "stop it" });
    expect(c).toMatchObject({ state: "canceled", cancelConfirmed: false, cancelReason: "stop it" });
    expect(fake.cancels).toEqual([{ taskId: created.id, attempt: 1, reason: "stop it" }]);
    const t = await get(created.id);
    expect(t.attempts[0]?.state).toBe("canceled");
    expect(t.events.at(-1)?.data).toMatchObject({ confirmed: false });
  });

  it("refuses a worker URL outside WORKER_ALLOWED_HOSTS, at registration, in configuration and on the way out", async () => {
    const err = await trpcError(
      s.http.workers.register.mutate({ name: "outside", url: "http://example.com:8080", capabilities: ["x"] }),
    );
    expect(err.data).toMatchObject({ code: "BAD_REQUEST" });
    expect(err.message).toContain('Worker host "example.com" is not in WORKER_ALLOWED_HOSTS');
    expect((await s.http.workers.list.query()).some((w) => w.name === "outside")).toBe(false);

    const config = testConfig({ ...FAST_ENV, WORKERS: "evil=http://10.0.0.8:80|script|1" });
    const other = await createServices(s.db, silentLog, { ...config, EXECUTION_ENABLED: false });
    await expect(other.start()).rejects.toThrow("not in WORKER_ALLOWED_HOSTS");

    // A row changed behind the API's back still cannot make the server call elsewhere.
    const { worker: w, fake } = await worker("cap-moved");
    await s.db.prisma.worker.update({ where: { id: w.id }, data: { url: "http://192.0.2.1:9/" } });
    // Its health check is refused on the way out: the worker is down, and dispatch sends it nothing.
    const down = await waitFor(
      "the moved worker to be down",
      () => s.http.workers.get.query({ id: w.id }),
      (x) => x.health === "down",
    );
    expect(down.lastError).toContain("not in WORKER_ALLOWED_HOSTS");
    const created = await task("cap-moved", { riskTier: 3 });
    const t = await waitFor(
      "the task to wait for the down worker",
      () => get(created.id),
      (x) => (x.waitingReason ?? "").includes(`${w.name}: health check down`),
    );
    expect(t.attempts).toHaveLength(0);
    expect(fake.requests).toHaveLength(0);
    await s.http.tasks.cancel.mutate({ id: created.id, reason: "its only worker is outside the allowlist" });
  });

  it("lets an admin trip a breaker (kept across a restart) and reset it; a task waits meanwhile", async () => {
    const { worker: w } = await worker("cap-trip");
    const tripped = await s.http.workers.trip.mutate({ id: w.id, reason: "fault test" });
    expect(tripped.breaker.state).toBe("tripped");
    const created = await task("cap-trip");
    const waiting = await waitFor(
      "the task to wait",
      () => get(created.id),
      (t) => (t.waitingReason ?? "").includes("tripped"),
    );
    expect(waiting.state).toBe("queued");

    // A second process on the same database restores the trip from the tripped column.
    const other = await createServices(s.db, silentLog, { ...testConfig(FAST_ENV), EXECUTION_ENABLED: false });
    await other.workers.restoreTrippedBreakers();
    expect((await other.workers.get(w.id)).breaker.state).toBe("tripped");
    other.hub.stop();

    const reset = await s.http.workers.reset.mutate({ id: w.id });
    expect(reset.breaker.state).toBe("closed");
    expect((await settled(created.id)).state).toBe("accepted");
  });

  it("says why a task waits when no worker has its capability", async () => {
    const created = await task("cap-nobody");
    const t = await waitFor(
      "a waiting reason",
      () => get(created.id),
      (x) => x.waitingReason !== null,
    );
    expect(t.waitingReason).toContain('No enabled worker has the capability "cap-nobody"');
  });

  it("counts, cancels and retries in bulk by filter and by ids, reporting each task's outcome", async () => {
    const ids = await Promise.all(
      [1, 2, 3].map(() => task("cap-bulk-none", { title: "bulk zebra" }).then((t) => t.id)),
    );
    const filter = { text: "bulk zebra" };
    expect(await s.http.tasks.count.query({ filter })).toEqual({ count: 3, capped: false, limit: 1000 });
    const canceled = await s.http.tasks.cancelMany.mutate({ selection: { filter }, reason: "bulk" });
    expect(canceled.done).toBe(3);
    expect(canceled.results.every((r) => r.state === "canceled")).toBe(true);
    const again = await s.http.tasks.cancelMany.mutate({ selection: { ids }, reason: "bulk" });
    expect(again).toMatchObject({ done: 0, skipped: 3 });
    expect(again.results[0]?.reason).toContain("from canceled to canceling");
    const retried = await s.http.tasks.retryMany.mutate({ selection: { ids: [ids[0]!] } });
    expect(retried.results).toEqual([{ id: ids[0], outcome: "done", state: "queued" }]);
    const both = await trpcError(s.http.tasks.retryMany.mutate({ selection: { ids, filter } }));
    expect(both.message).toContain("either ids or a filter");
  });

  it("refuses to remove a worker with running attempts, then removes it once idle", async () => {
    const { fake, worker: w } = await worker("cap-remove", { durationMs: 60_000 });
    const created = await task("cap-remove");
    await waitFor(
      "it to run",
      () => get(created.id),
      (t) => t.state === "running",
    );
    const err = await trpcError(s.http.workers.remove.mutate({ id: w.id }));
    expect(err.message).toContain("is running 1 attempt");
    await s.http.tasks.cancel.mutate({ id: created.id, reason: "to remove the worker" });
    expect(fake.cancels).toHaveLength(1);
    expect(await s.http.workers.remove.mutate({ id: w.id })).toEqual({ id: w.id, removed: true });
  });
});

import { createTRPCClient, httpBatchLink, TRPCClientError } from "@trpc/client";
import superjson from "superjson";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isSealed } from "../src/server/keystore/secrets.js";
import type { AppRouter } from "../src/server/router.js";
import type { AuditEntryDto } from "../src/shared/audit.js";
import { TERMINAL_STATES } from "../src/shared/task-state.js";
import { DATABASES } from "./helpers/databases.js";
import { ADMIN_TOKEN, type EngineApp, startEngineApp, waitFor } from "./helpers/fault-worker.js";
import { withEvents } from "./helpers/task-events.js";
import { type ReferenceWorkerProcess, startReferenceWorkerProcess } from "./helpers/worker.js";

const WORKER_TOKEN = "trail-reference-token-5f1c2d9e8a";
const USER_AGENT = "trail-test/1.0";

describe.each(DATABASES)("audit trail and provenance of execution on %s", (kind) => {
  let s: EngineApp;
  let worker: ReferenceWorkerProcess;
  let api: ReturnType<typeof createTRPCClient<AppRouter>>;
  let workerId: string;

  beforeAll(async () => {
    worker = await startReferenceWorkerProcess({ env: { WORKER_TOKEN, WORKER_MAX_CONCURRENCY: "4" } });
    s = await startEngineApp(kind);
    // A client that says who it is, so the trail's user agent can be checked.
    api = createTRPCClient<AppRouter>({
      links: [
        httpBatchLink({
          url: `${s.url}/trpc`,
          transformer: superjson,
          headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "user-agent": USER_AGENT },
        }),
      ],
    });
    workerId = (
      await api.workers.register.mutate({
        name: "reference",
        url: worker.url,
        capabilities: ["script"],
        maxConcurrency: 4,
        token: WORKER_TOKEN,
      })
    ).id;
  });
  afterAll(async () => {
    await s?.stop();
    await worker?.stop();
  });

  /** Oldest first: audit.list pages newest first. */
  async function auditOf(resourceId: string): Promise<AuditEntryDto[]> {
    const { items } = await api.audit.list.query({ resourceId, limit: 200 });
    return [...items].reverse();
  }
  const chainOf = async (taskId: string) =>
    [...(await api.provenance.list.query({ taskId, limit: 200 })).items].reverse();
  const settled = (id: string) =>
    waitFor(
      `task ${id} to settle`,
      () => withEvents(api, { id }),
      (t) => TERMINAL_STATES.includes(t.state),
    );

  it("a task run on the reference worker leaves an entry per state change and a verified chain", async () => {
    const created = await api.tasks.create.mutate({
      title: "Write a file",
      input: { script: "printf 'hello\\n' > hello.txt" },
    });
    const done = await settled(created.id);
    expect(done.state).toBe("accepted");

    const trail = await auditOf(created.id);
    expect(trail.map((e) => [e.action, e.actorKind, e.actorId])).toEqual([
      ["task.create", "token", "admin"],
      ["task.dispatch", "system", "dispatcher"],
      ["task.verdict", "system", "council"],
    ]);
    expect(
      trail.map((e) => [(e.before as { state?: string } | null)?.state ?? null, (e.after as { state: string }).state]),
    ).toEqual([
      [null, "queued"],
      ["queued", "running"],
      ["running", "accepted"],
    ]);
    // The operator's action carries where it came from; the system's own changes carry nothing.
    expect(trail[0]).toMatchObject({ clientAddress: "127.0.0.1", userAgent: USER_AGENT, resourceType: "task" });
    expect(trail.slice(1).every((e) => e.clientAddress === null && e.userAgent === null)).toBe(true);
    expect(trail[1]?.after).toMatchObject({ attempt: 1, worker: "reference", workerId });
    // The verdict's entry names the worker whose result it judged.
    expect(trail[2]?.after).toMatchObject({ verdict: "accept", worker: "reference", attempt: 1, artifacts: 1 });

    const chain = await chainOf(created.id);
    expect(chain.map((r) => r.kind)).toEqual(["task.created", "task.dispatched", "task.result", "task.verdict"]);
    expect(chain[0]?.payload).toMatchObject({ title: "Write a file", by: { kind: "token", id: "admin" } });
    expect(chain[1]?.payload).toMatchObject({ attempt: 1, worker: "reference", workerId });
    const attempt = done.attempts[0];
    expect(chain[2]?.payload).toMatchObject({
      attempt: 1,
      attemptId: attempt?.id,
      status: "completed",
      artifacts: [{ path: "hello.txt", operation: "create", digest: expect.stringMatching(/^[0-9a-f]{64}$/) }],
    });
    expect(chain[3]?.payload).toMatchObject({
      verdict: "accept",
      judgementDigest: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    const report = await api.provenance.verify.query();
    expect(report).toMatchObject({ ok: true, firstBad: null });
    expect(report.checked).toBeGreaterThanOrEqual(4);
  });

  it("a cancel records who, why and whether it was confirmed, in the trail and on the chain", async () => {
    const created = await api.tasks.create.mutate({ title: "Sleep", input: { script: "echo sleeping; sleep 60" } });
    await waitFor(
      "the script to start",
      () => withEvents(api, { id: created.id }),
      (t) => t.state === "running" && t.events.some((e) => e.type === "log"),
    );
    const canceled = await api.tasks.cancel.mutate({ id: created.id, reason: "wrong branch" });
    expect(canceled).toMatchObject({ state: "canceled", cancelConfirmed: true });

    const trail = await auditOf(created.id);
    const cancel = trail.find((e) => e.action === "task.cancel");
    expect(cancel).toMatchObject({
      actorKind: "token",
      actorId: "admin",
      userAgent: USER_AGENT,
      before: { state: "running" },
      after: { state: "canceling", reason: "wrong branch" },
    });
    const done = trail.find((e) => e.action === "task.cancel_done");
    expect(done).toMatchObject({
      actorKind: "system",
      after: { state: "canceled", confirmed: true, requestedBy: "admin", reason: "wrong branch" },
    });
    expect(trail.map((e) => e.action).indexOf("task.cancel")).toBeLessThan(
      trail.map((e) => e.action).indexOf("task.cancel_done"),
    );

    const chain = await chainOf(created.id);
    // The request goes on the log when it is made (binding its audit entry), the cancel when it ends.
    expect(chain.map((r) => r.kind)).toEqual([
      "task.created",
      "task.dispatched",
      "task.cancel_requested",
      "task.result",
      "task.cancel",
    ]);
    expect(chain[2]?.payload).toMatchObject({ by: "admin", reason: "wrong branch" });
    expect(chain[3]?.payload).toMatchObject({ status: "no_result", error: "Canceled: wrong branch" });
    expect(chain[4]?.payload).toMatchObject({ by: "admin", reason: "wrong branch", confirmed: true });
    expect((await api.provenance.verify.query()).ok).toBe(true);

    // A queued task is canceled at once, confirmed, in one transaction with both entries.
    const worker2 = await api.tasks.create.mutate({ title: "Never runs", capability: "nobody-has-this" });
    await api.tasks.cancel.mutate({ id: worker2.id, reason: "not needed" });
    expect((await auditOf(worker2.id)).map((e) => e.action)).toEqual([
      "task.create",
      "task.cancel",
      "task.cancel_done",
    ]);
    expect((await chainOf(worker2.id)).at(-1)?.payload).toMatchObject({
      by: "admin",
      reason: "not needed",
      confirmed: true,
      detail: "nothing was running",
    });
  });

  it("bulk cancel and retry write one entry per task; retry is on the chain", async () => {
    const ids = await Promise.all(
      [1, 2, 3].map(async (i) => (await api.tasks.create.mutate({ title: `bulk ${i}`, capability: "idle" })).id),
    );
    const canceled = await api.tasks.cancelMany.mutate({ selection: { ids }, reason: "bulk stop" });
    expect(canceled.done).toBe(3);
    const retried = await api.tasks.retryMany.mutate({ selection: { ids } });
    expect(retried.done).toBe(3);
    for (const id of ids) {
      const actions = (await auditOf(id)).map((e) => e.action);
      expect(actions).toEqual(["task.create", "task.cancel", "task.cancel_done", "task.retry"]);
      expect((await chainOf(id)).map((r) => r.kind)).toEqual(["task.created", "task.cancel", "task.retry"]);
    }
  });

  it("keeps the worker token sealed in the database and still sends the right bearer token", async () => {
    const [row] = await s.db.query<{ token: string }>(`SELECT token FROM workers WHERE id = $1::uuid`, [workerId]);
    expect(row?.token).toBeTruthy();
    expect(row?.token).not.toContain(WORKER_TOKEN);
    expect(isSealed(row?.token as string)).toBe(true);
    // Nothing else in the database holds it either: not the trail, not the chain, not the events.
    const leaks = await s.db.query<{ n: number }>(
      `SELECT (SELECT count(*) FROM audit_entries WHERE before::text LIKE $1 OR after::text LIKE $1)
            + (SELECT count(*) FROM provenance_records WHERE payload::text LIKE $1)
            + (SELECT count(*) FROM task_events WHERE data::text LIKE $1) AS n`,
      [`%${WORKER_TOKEN}%`],
    );
    expect(Number(leaks[0]?.n)).toBe(0);

    // The reference worker refuses a request without its token, so a run that succeeds proves the token sent.
    const unauthorized = await fetch(`${worker.url}/health`, { headers: { authorization: "Bearer wrong" } });
    expect(unauthorized.status).toBe(401);
    const t = await api.tasks.create.mutate({ title: "Token check", input: { script: "printf 'ok\\n' > ok.txt" } });
    expect((await settled(t.id)).state).toBe("accepted");

    // A new token is sealed too, audited as changed but never written out.
    const next = "trail-rotated-token-0a9b8c7d";
    await api.workers.update.mutate({ id: workerId, patch: { token: next } });
    const [after] = await s.db.query<{ token: string }>(`SELECT token FROM workers WHERE id = $1::uuid`, [workerId]);
    expect(isSealed(after?.token as string)).toBe(true);
    expect(after?.token).not.toContain(next);
    const update = (await auditOf(workerId)).find((e) => e.action === "worker.update");
    expect(update?.after).toMatchObject({ hasToken: true, tokenChanged: true });
    expect(JSON.stringify(await auditOf(workerId))).not.toContain(next);
    // The worker still expects the old token: its health check is answered 401, which proves the new one was
    // sent (and a worker whose health is down gets no work).
    const down = await waitFor(
      "the health check with the new token",
      () => api.workers.get.query({ id: workerId }),
      (w) => w.health === "down" && (w.lastError ?? "").includes("401"),
    );
    expect(JSON.stringify(down)).not.toContain(next);
    await api.workers.update.mutate({ id: workerId, patch: { token: WORKER_TOKEN } });
    await waitFor(
      "the worker to be healthy again",
      () => api.workers.get.query({ id: workerId }),
      (w) => w.health === "ok",
    );
  });

  it("audits worker registration, update, trip, reset and removal with the admin as actor, never the token", async () => {
    const w = await api.workers.register.mutate({
      name: "spare",
      url: worker.url,
      capabilities: ["spare"],
      token: "spare-secret-token-123",
    });
    await api.workers.update.mutate({ id: w.id, patch: { maxConcurrency: 2 } });
    await api.workers.trip.mutate({ id: w.id, reason: "audit test" });
    await api.workers.reset.mutate({ id: w.id });
    await api.workers.remove.mutate({ id: w.id });
    const trail = await auditOf(w.id);
    expect(trail.map((e) => e.action)).toEqual([
      "worker.register",
      "worker.update",
      "worker.trip",
      "worker.reset",
      "worker.remove",
    ]);
    expect(trail.every((e) => e.actorKind === "token" && e.actorId === "admin" && e.userAgent === USER_AGENT)).toBe(
      true,
    );
    expect(trail[1]).toMatchObject({ before: { maxConcurrency: 1 }, after: { maxConcurrency: 2 } });
    expect(trail[2]?.after).toEqual({ tripped: true, reason: "audit test" });
    expect(JSON.stringify(trail)).not.toContain("spare-secret-token-123");
  });

  it("audits saved views: save, replace and delete", async () => {
    const saved = await api.views.save.mutate({ name: "Mine", filter: { states: ["failed"] } });
    await api.views.save.mutate({ name: "Mine", filter: { states: ["accepted"] } });
    await api.views.delete.mutate({ id: saved.id });
    const trail = await auditOf(saved.id);
    expect(trail.map((e) => e.action)).toEqual(["view.save", "view.save", "view.delete"]);
    expect(trail[1]).toMatchObject({
      before: { name: "Mine", filter: { states: ["failed"] } },
      after: { name: "Mine", filter: { states: ["accepted"] } },
    });
    expect(trail[2]?.before).toMatchObject({ filter: { states: ["accepted"] } });
  });

  it("a change that fails writes no audit entry and no provenance record", async () => {
    const counts = async () => {
      const [r] = await s.db.query<{ audit: number; chain: number }>(
        `SELECT (SELECT count(*) FROM audit_entries)::int AS audit, (SELECT count(*) FROM provenance_records)::int AS chain`,
      );
      return r;
    };
    const queued = await api.tasks.create.mutate({ title: "Stays queued", capability: "nobody-has-this" });
    const before = await counts();
    // Illegal transitions, refused inside their transaction after it began.
    await expect(api.tasks.retry.mutate({ id: queued.id })).rejects.toThrow(/from queued to queued/);
    await expect(
      s.services.tasks.transition(queued.id, [{ to: "accepted", by: "system", actorId: "system" }]),
    ).rejects.toThrow(/from queued to accepted/);
    // A conflict and two missing resources.
    const conflict = await api.workers.register
      .mutate({ name: "reference", url: worker.url, capabilities: ["script"] })
      .catch((e: unknown) => e);
    expect(conflict).toBeInstanceOf(TRPCClientError);
    expect((conflict as TRPCClientError<AppRouter>).data?.code).toBe("CONFLICT");
    await expect(api.views.delete.mutate({ id: "00000000-0000-4000-8000-000000000000" })).rejects.toThrow(
      /does not exist/,
    );
    await expect(
      api.workers.trip.mutate({ id: "00000000-0000-4000-8000-000000000000", reason: "gone" }),
    ).rejects.toThrow(/does not exist/);
    expect(await counts()).toEqual(before);
    expect((await withEvents(api, { id: queued.id })).state).toBe("queued");
  });
});

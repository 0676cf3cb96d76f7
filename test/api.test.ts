import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { TRPCClientError } from "@trpc/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appendTaskEvents } from "../src/server/events/append.js";
import type { AppRouter } from "../src/server/router.js";
import type { TaskEventDto } from "../src/shared/task-events.js";
import { DATABASES } from "./helpers/databases.js";
import { type RunningApp, startApp } from "./helpers/server.js";

/** A WebSocket subscription starts in its own time: on a loaded machine, well over expect.poll's default second. */
const POLL = { timeout: 20_000 };

async function trpcError(p: Promise<unknown>) {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TRPCClientError);
  return err as TRPCClientError<AppRouter>;
}

describe.each(DATABASES)("HTTP and WebSocket API on %s", (kind) => {
  let s: RunningApp;
  beforeAll(async () => {
    s = await startApp(kind);
  });
  afterAll(() => s.stop());

  it("answers /healthz and /readyz", async () => {
    const live = await fetch(`${s.url}/healthz`);
    expect(live.status).toBe(200);
    const ready = await fetch(`${s.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: "ready" });
  });

  it("reports version, uptime, Node and the database in system.health", async () => {
    const h = await s.http.system.health.query();
    // The token-authenticated client gets the full answer; anonymous callers get only { ready, status }.
    if (!("database" in h)) throw new Error(`expected the signed-in health answer, got ${JSON.stringify(h)}`);
    expect(h).toMatchObject({ status: "ok", version: expect.stringMatching(/^\d+\.\d+\.\d+/), node: process.version });
    expect(h.database).toMatchObject({ kind, ok: true });
  });

  it("reports the database round trip it measured: more than nothing, within the call that carried it", async () => {
    for (let i = 0; i < 5; i++) {
      const before = performance.now();
      const h = await s.http.system.health.query();
      const elapsed = performance.now() - before;
      if (!("database" in h)) throw new Error(`expected the signed-in health answer, got ${JSON.stringify(h)}`);
      // A constant, a time since start, or a figure in the wrong unit (seconds, microseconds) falls outside.
      expect(h.database.latencyMs).toBeGreaterThan(0);
      expect(h.database.latencyMs).toBeLessThanOrEqual(elapsed);
    }
  });

  it("creates, lists and gets a task, recording the local operator as actor", async () => {
    const t = await s.http.tasks.create.mutate({ title: "Over HTTP", priority: "high", input: { script: "true" } });
    expect(t.createdBy).toBe("local-operator");
    const list = await s.http.tasks.list.query({ filter: { text: "over http" } });
    expect(list.items.map((i) => i.id)).toEqual([t.id]);
    const got = await s.http.tasks.get.query({ id: t.id });
    expect(got.createdAt).toBeInstanceOf(Date);
    expect("events" in got).toBe(false); // read by page, below
    const events = await s.http.tasks.events.query({ taskId: t.id });
    expect(events.items.map((e) => [e.type, e.actor])).toEqual([["created", "local-operator"]]);
  });

  it("pages a task's events newest first, forward from any seq, and by kind, without gap or overlap", async () => {
    const t = await s.http.tasks.create.mutate({ title: "many events" });
    await s.http.tasks.cancel.mutate({ id: t.id, reason: "to have state events among the lines" });
    const lines = (from: number, n: number) =>
      s.db.prisma.$transaction((tx) =>
        appendTaskEvents(
          tx,
          Array.from({ length: n }, (_, i) => ({
            taskId: t.id,
            type: "log" as const,
            actor: "test",
            data: { line: `line ${from + i}` },
          })),
        ),
      );
    await lines(0, 25);
    await s.http.tasks.retry.mutate({ id: t.id });
    await lines(25, 25);
    const all = (await s.db.prisma.taskEvent.findMany({ where: { taskId: t.id }, orderBy: { seq: "asc" } })).map(
      (e) => ({ seq: e.seq.toString(), type: e.type }),
    );
    expect(all.length).toBe(54);
    const seqs = (items: { seq: string }[]) => items.map((e) => e.seq);

    // The newest page, then older ones with `before`, until there are none: every event once, in order.
    const newest = await s.http.tasks.events.query({ taskId: t.id, limit: 20 });
    expect(seqs(newest.items)).toEqual(seqs(all.slice(-20)));
    expect(newest.hasMore).toBe(true);
    const pages = [newest.items];
    let before = newest.items[0]?.seq;
    for (;;) {
      const page = await s.http.tasks.events.query({ taskId: t.id, limit: 20, before });
      expect(page.through).toBeNull();
      pages.unshift(page.items);
      if (!page.hasMore) break;
      before = page.items[0]?.seq;
    }
    expect(seqs(pages.flat())).toEqual(seqs(all));

    // Forward from the start with `after`, continuing from `through`.
    const forward: { seq: string }[] = [];
    let after = "0";
    for (let guard = 0; guard < 10; guard++) {
      const page = await s.http.tasks.events.query({ taskId: t.id, limit: 20, after });
      forward.push(...page.items);
      after = page.through as string;
      if (!page.hasMore) break;
    }
    expect(seqs(forward)).toEqual(seqs(all));

    // Only some kinds: the state events among the lines, and their resume point past the last line.
    const state = await s.http.tasks.events.query({ taskId: t.id, kinds: ["created", "state_changed"] });
    expect(state.items.map((e) => e.toState)).toEqual(["queued", "canceling", "canceled", "queued"]);
    expect(state.hasMore).toBe(false);
    expect(BigInt(state.through as string)).toBeGreaterThanOrEqual(BigInt(all.at(-1)?.seq as string));
  });

  it("refuses an unknown event kind naming the known ones, both after and before, and an unknown task", async () => {
    const t = await s.http.tasks.create.mutate({ title: "kinds" });
    const bad = await trpcError(s.http.tasks.events.query({ taskId: t.id, kinds: ["logs" as "log"] }));
    expect(bad.data?.code).toBe("BAD_REQUEST");
    expect(bad.message).toContain('Unknown event kind "logs"; the kinds are: created, state_changed, log');
    const sub = await trpcError(s.http.tasks.events.query({ taskId: t.id, after: "1", before: "9" }));
    expect(sub.message).toContain("Give after or before, not both");
    const none = await trpcError(s.http.tasks.events.query({ taskId: "7a0e0a4e-3c4f-4c1e-9a55-9c3b1d9a2b11" }));
    expect(none.data?.code).toBe("NOT_FOUND");
    const { client, close } = s.ws();
    try {
      const err = await new Promise<unknown>((resolve) => {
        client.tasks.onEvent.subscribe({ kinds: ["nope" as "log"] }, { onError: resolve, onData: () => {} });
      });
      expect(err).toBeInstanceOf(TRPCClientError);
      expect((err as Error).message).toContain('Unknown event kind "nope"');
    } finally {
      await close();
    }
  });

  it("refuses an invalid task with BAD_REQUEST naming each field, and creates nothing", async () => {
    const before = (await s.http.tasks.list.query({})).items.length;
    const err = await trpcError(s.http.tasks.create.mutate({ title: "", riskTier: 7 as 1, capability: "no spaces!" }));
    expect(err.data?.code).toBe("BAD_REQUEST");
    expect(err.message).toContain("title: Title is required");
    const fields = (err.data as { fieldErrors?: { path: string[] }[] }).fieldErrors?.map((f) => f.path.join("."));
    expect(fields).toEqual(expect.arrayContaining(["title", "riskTier", "capability"]));
    expect((await s.http.tasks.list.query({})).items.length).toBe(before);
  });

  it("answers NOT_FOUND for an unknown task and BAD_REQUEST for a malformed id", async () => {
    const nf = await trpcError(s.http.tasks.get.query({ id: "7a0e0a4e-3c4f-4c1e-9a55-9c3b1d9a2b11" }));
    expect(nf.data?.code).toBe("NOT_FOUND");
    expect(nf.message).toContain("does not exist");
    const bad = await trpcError(s.http.tasks.get.query({ id: "42" }));
    expect(bad.data?.code).toBe("BAD_REQUEST");
  });

  it("refuses an illegal transition with BAD_REQUEST naming both states", async () => {
    const t = await s.http.tasks.create.mutate({ title: "retry me" });
    const err = await trpcError(s.http.tasks.retry.mutate({ id: t.id }));
    expect(err.data?.code).toBe("BAD_REQUEST");
    expect(err.message).toContain("from queued to queued");
  });

  it("rejects an oversized body before parsing it", async () => {
    const res = await fetch(`${s.url}/trpc/tasks.create`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${s.token}` },
      body: JSON.stringify({ json: { title: "big", description: "x".repeat(2 * 1024 * 1024) } }),
    });
    expect(res.status).toBe(413);
    expect((await s.http.tasks.list.query({ filter: { text: "big" } })).items).toEqual([]);
  });

  it("streams task events over WebSocket and resumes after lastEventId without gaps", async () => {
    const baseline = s.services.hub.subscriberCount;
    const { client, close } = s.ws();
    const received: TaskEventDto[] = [];
    const sub = client.tasks.onEvent.subscribe({}, { onData: (e) => received.push(e.data) });
    // The subscription is live once the server has it (the server's live metrics hold one of their own).
    await expect.poll(() => s.services.hub.subscriberCount, POLL).toBeGreaterThan(baseline);
    const a = await client.tasks.create.mutate({ title: "live one" });
    const b = await s.http.tasks.create.mutate({ title: "live two" });
    await expect.poll(() => received.length, POLL).toBe(2);
    expect(received.map((e) => e.taskId)).toEqual([a.id, b.id]);
    sub.unsubscribe();
    // The client's stop ends the subscription on the server, not only on the client.
    await expect.poll(() => s.services.hub.subscriberCount, POLL).toBe(baseline);

    // Written while nobody listened; a client resuming after the first event gets the rest, in order.
    const c = await s.http.tasks.create.mutate({ title: "while away" });
    const resumed: TaskEventDto[] = [];
    const sub2 = client.tasks.onEvent.subscribe(
      { lastEventId: received[0]?.seq },
      { onData: (e) => resumed.push(e.data) },
    );
    await expect.poll(() => resumed.length, POLL).toBe(2);
    expect(resumed.map((e) => e.taskId)).toEqual([b.id, c.id]);
    sub2.unsubscribe();
    await expect.poll(() => s.services.hub.subscriberCount, POLL).toBe(baseline);
    await close();
  });

  it("streams only the kinds asked for: a task list's subscription gets state changes, not log lines", async () => {
    const { client, close } = s.ws();
    const received: TaskEventDto[] = [];
    const sub = client.tasks.onEvent.subscribe(
      { kinds: ["created", "state_changed"] },
      { onData: (e) => received.push(e.data) },
    );
    // The subscription starts "from now on": it is live once a task created after it shows up.
    await expect
      .poll(async () => {
        const probe = await s.http.tasks.create.mutate({ title: "probe" });
        return received.some((e) => e.taskId === probe.id);
      }, POLL)
      .toBe(true);
    const t = await s.http.tasks.create.mutate({ title: "quiet list" });
    await s.db.prisma.$transaction((tx) =>
      appendTaskEvents(
        tx,
        Array.from({ length: 30 }, (_, i) => ({ taskId: t.id, type: "log" as const, actor: "t", data: { i } })),
      ),
    );
    s.services.hub.notify();
    await s.http.tasks.cancel.mutate({ id: t.id, reason: "ends the stream" });
    await expect
      .poll(() => received.filter((e) => e.taskId === t.id).map((e) => e.toState), POLL)
      .toEqual(["queued", "canceling", "canceled"]);
    expect(received.every((e) => e.type !== "log")).toBe(true);
    sub.unsubscribe();
    await close();
  });
});

describe("roles and readiness", () => {
  it("a viewer may read but not submit: FORBIDDEN with the role named", async () => {
    const s = await startApp("pglite", { LOCAL_ACTOR_ROLE: "viewer" });
    try {
      await s.http.tasks.list.query({});
      const err = await trpcError(s.http.tasks.create.mutate({ title: "nope" }));
      expect(err.data?.code).toBe("FORBIDDEN");
      expect(err.message).toContain("needs the operator role");
      expect((await s.http.tasks.list.query({})).items).toEqual([]);
    } finally {
      await s.stop();
    }
  });

  it("/readyz is 503 with the reason when a migration is missing or the database is gone; /healthz stays 200", async () => {
    const s = await startApp("pglite");
    try {
      await s.db.exec(`DELETE FROM "_prisma_migrations"`);
      const res = await fetch(`${s.url}/readyz`);
      expect(res.status).toBe(503);
      expect((await res.json()).reason).toContain("migrations not applied");
      await s.db.close();
      const gone = await fetch(`${s.url}/readyz`);
      expect(gone.status).toBe(503);
      expect((await gone.json()).reason).toContain("database unreachable");
      expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    } finally {
      await s.app.close();
    }
  });

  it("serves the built console with SPA fallback and security headers", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "agency-web-"));
    writeFileSync(path.join(dir, "index.html"), "<!doctype html><title>Agent Agency</title>");
    const s = await startApp("pglite", { WEB_DIST_DIR: dir });
    try {
      const res = await fetch(`${s.url}/tasks/some-id`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain("<title>Agent Agency</title>");
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(res.headers.get("x-frame-options")).toBe("DENY");
    } finally {
      await s.stop();
    }
  });
});

import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { TRPCClientError } from "@trpc/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AppRouter } from "../src/server/router.js";
import type { TaskEventDto } from "../src/shared/task-events.js";
import { DATABASES } from "./helpers/databases.js";
import { type RunningApp, startApp } from "./helpers/server.js";

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
    expect(h.database.latencyMs).toBeGreaterThanOrEqual(0);
  });

  it("creates, lists and gets a task, recording the local operator as actor", async () => {
    const t = await s.http.tasks.create.mutate({ title: "Over HTTP", priority: "high", input: { script: "true" } });
    expect(t.createdBy).toBe("local-operator");
    const list = await s.http.tasks.list.query({ filter: { text: "over http" } });
    expect(list.items.map((i) => i.id)).toEqual([t.id]);
    const got = await s.http.tasks.get.query({ id: t.id });
    expect(got.createdAt).toBeInstanceOf(Date);
    expect(got.events[0]?.actor).toBe("local-operator");
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
    await expect.poll(() => s.services.hub.subscriberCount).toBeGreaterThan(baseline);
    const a = await client.tasks.create.mutate({ title: "live one" });
    const b = await s.http.tasks.create.mutate({ title: "live two" });
    await expect.poll(() => received.length).toBe(2);
    expect(received.map((e) => e.taskId)).toEqual([a.id, b.id]);
    sub.unsubscribe();
    // The client's stop ends the subscription on the server, not only on the client.
    await expect.poll(() => s.services.hub.subscriberCount).toBe(baseline);

    // Written while nobody listened; a client resuming after the first event gets the rest, in order.
    const c = await s.http.tasks.create.mutate({ title: "while away" });
    const resumed: TaskEventDto[] = [];
    const sub2 = client.tasks.onEvent.subscribe(
      { lastEventId: received[0]?.seq },
      { onData: (e) => resumed.push(e.data) },
    );
    await expect.poll(() => resumed.length).toBe(2);
    expect(resumed.map((e) => e.taskId)).toEqual([b.id, c.id]);
    sub2.unsubscribe();
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

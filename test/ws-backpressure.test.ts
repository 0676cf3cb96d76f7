import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { loadConfig } from "../src/server/config.js";
import { type RunningApp, startApp } from "./helpers/server.js";

interface Frame {
  id?: number;
  result?: { type?: string; id?: string; data?: { json?: { seq?: string } } };
  error?: unknown;
}

/** A WebSocket speaking tRPC's protocol raw, so the test controls when (and whether) it reads. */
async function rawClient(s: RunningApp) {
  const ws = new WebSocket(`${s.url.replace("http", "ws")}/trpc?connectionParams=1`);
  const frames: Frame[] = [];
  const closed = new Promise<number>((resolve) => ws.once("close", (code) => resolve(code)));
  ws.on("message", (raw) => frames.push(JSON.parse(String(raw)) as Frame));
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  ws.send(JSON.stringify({ method: "connectionParams", data: { token: s.token } }));
  const subscribe = (id: number, lastEventId: string | null) =>
    ws.send(
      JSON.stringify({
        id,
        method: "subscription",
        params: { path: "tasks.onEvent", input: { json: { lastEventId } } },
      }),
    );
  /** Event ids delivered to one subscription, in order. */
  const eventIds = (id: number) =>
    frames.filter((f) => f.id === id && f.result?.type === "data").map((f) => f.result?.id as string);
  return { ws, frames, closed, subscribe, eventIds };
}

async function until(what: string, check: () => boolean | Promise<boolean>) {
  for (let i = 0; i < 2_000; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`gave up waiting for ${what}`);
}

describe("a WebSocket client that stops reading", () => {
  let s: RunningApp;
  beforeAll(async () => {
    s = await startApp("pglite", { WS_MAX_BUFFERED_BYTES: "65536", EXECUTION_ENABLED: "0" });
  });
  afterAll(async () => {
    await s?.stop();
  });

  it("is dropped over the buffer cap, the server keeps serving, and a new client resumes without a gap", async () => {
    const slow = await rawClient(s);
    // Many subscriptions on the one connection: each event is sent once per subscription, so a stalled
    // reader fills the kernel's socket buffers (megabytes on loopback) with a modest number of tasks.
    const SUBS = 40;
    for (let id = 1; id <= SUBS; id++) slow.subscribe(id, null);
    await until(
      "all subscriptions to start",
      () => slow.frames.filter((f) => f.result?.type === "started").length === SUBS,
    );
    const first = await s.http.tasks.create.mutate({ title: "before the stall", input: { script: "true" } });
    await until("the first event to arrive", () => slow.eventIds(1).length > 0);

    (slow.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
    const baseline = s.services.hub.subscriberCount;
    expect(baseline).toBeGreaterThanOrEqual(SUBS);

    const title = "x".repeat(200);
    let created = 1;
    // Keep producing until the server has dropped the stalled connection (its subscriptions end).
    while (s.services.hub.subscriberCount > baseline - SUBS) {
      await s.http.tasks.create.mutate({ title: `${title.slice(0, 190)} ${created}`, input: { script: "true" } });
      created++;
      if (created > 5_000) throw new Error("the stalled connection was never dropped");
    }
    expect(s.services.hub.subscriberCount).toBe(baseline - SUBS);

    // Other clients are still served, over HTTP and over a fresh WebSocket.
    const other = s.ws();
    try {
      const listed = await other.client.tasks.get.query({ id: first.id });
      expect(listed.id).toBe(first.id);
    } finally {
      await other.close();
    }

    // Reading again, the stalled client gets what the kernel held, then the connection's end.
    (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    const code = await slow.closed;
    expect([1006, 1013]).toContain(code);
    const seen = slow.eventIds(1);
    const lastSeen = seen.at(-1);
    if (!lastSeen) throw new Error("the stalled client saw no event");

    // The whole history, as a reference, and a resume from the last id the stalled client saw.
    const reference = await rawClient(s);
    reference.subscribe(1, "0");
    reference.subscribe(2, lastSeen);
    const total = created; // one task.created event per task
    await until("the reference replay", () => reference.eventIds(1).length >= total);
    const all = reference.eventIds(1);
    await until("the resumed replay", () => reference.eventIds(2).at(-1) === all.at(-1));
    const at = all.indexOf(lastSeen);
    expect(at).toBeGreaterThanOrEqual(0);
    expect(seen).toEqual(all.slice(all.indexOf(seen[0] as string), at + 1));
    expect(reference.eventIds(2)).toEqual(all.slice(at + 1));
    expect(reference.eventIds(2).length).toBeGreaterThan(0);
    reference.ws.close();
    await reference.closed;
  });
});

describe("WS_MAX_BUFFERED_BYTES", () => {
  it("defaults to 4 MiB and refuses a value too small to hold one message, naming the variable", () => {
    expect(loadConfig({}).WS_MAX_BUFFERED_BYTES).toBe(4 * 1024 * 1024);
    expect(() => loadConfig({ WS_MAX_BUFFERED_BYTES: "100" })).toThrow(/WS_MAX_BUFFERED_BYTES/);
    expect(() => loadConfig({ WS_MAX_BUFFERED_BYTES: "lots" })).toThrow(/WS_MAX_BUFFERED_BYTES/);
  });
});

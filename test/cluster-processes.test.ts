import { randomBytes, randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { ChatMessageDto, TypingEvent } from "../src/shared/chat.js";
import type { TaskEventDto } from "../src/shared/task-events.js";
import { TERMINAL_STATES } from "../src/shared/task-state.js";
import { type Api, type Cluster, type ClusterNode, startCluster } from "./helpers/cluster.js";
import { POSTGRES_URL } from "./helpers/databases.js";
import { ADMIN_TOKEN, type FaultWorker, startFaultWorker, waitFor } from "./helpers/fault-worker.js";
import { httpClient } from "./helpers/server-process.js";

const LIMIT_PER_MINUTE = 4;

/** Waits until every task is terminal, read through `api`. */
async function settle(api: Api, ids: string[], timeoutMs = 60_000) {
  return waitFor(
    `${ids.length} tasks to settle`,
    () => Promise.all(ids.map((id) => api.tasks.get.query({ id }))),
    (ts) => ts.every((t) => TERMINAL_STATES.includes(t.state)),
    timeoutMs,
  );
}

/** Signs `username` in on one process (a session cookie) and makes an API token with that session on another. */
async function tokenThroughSession(signInOn: ClusterNode, tokenOn: ClusterNode, username: string, password: string) {
  const res = await fetch(`${signInOn.url}/trpc/auth.signIn`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ json: { username, password } }),
  });
  expect(res.status).toBe(200);
  const cookie = res.headers.get("set-cookie")?.split(";")[0];
  expect(cookie).toMatch(/^agency_session=/);
  // An admin made this user: the first thing the session may do is choose its own password. Each call
  // carries the Origin the console's page on that process would send.
  const changed = await fetch(`${signInOn.url}/trpc/auth.changePassword`, {
    method: "POST",
    headers: { "content-type": "application/json", cookie: cookie as string, origin: signInOn.url },
    body: JSON.stringify({ json: { currentPassword: password, newPassword: `${password}-own` } }),
  });
  expect(changed.status).toBe(200);
  const created = await fetch(`${tokenOn.url}/trpc/tokens.create`, {
    method: "POST",
    headers: { "content-type": "application/json", cookie: cookie as string, origin: tokenOn.url },
    body: JSON.stringify({ json: { name: "cluster test" } }),
  });
  expect(created.status).toBe(200);
  const body = (await created.json()) as { result: { data: { json: { token: string } } } };
  return body.result.data.json.token;
}

describe.skipIf(!POSTGRES_URL)("several server processes on one Postgres database", () => {
  let worker: FaultWorker;
  let cluster: Cluster;
  let a: ClusterNode;
  let b: ClusterNode;
  let c: ClusterNode;
  let sql: pg.Client;
  const closers: (() => void)[] = [];

  beforeAll(async () => {
    worker = await startFaultWorker({ durationMs: 100 });
    cluster = await startCluster(["a", "b", "c"], {
      WORKERS: `counter=${worker.url}|script|4`,
      LEASE_MS: "1500",
      RECOVERY_INTERVAL_MS: "300",
      CHAT_MESSAGES_PER_MINUTE: String(LIMIT_PER_MINUTE),
    });
    [a, b, c] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
    sql = new pg.Client({ connectionString: POSTGRES_URL });
    await sql.connect();
  }, 120_000);

  afterAll(async () => {
    for (const close of closers) close();
    await sql?.end();
    await cluster?.stop();
    await worker?.close();
  }, 60_000);

  it("delivers every event of tasks created on A to a subscriber on B, in order, and replays them on C", async () => {
    const admin = ADMIN_TOKEN;
    const live = b.wsAs(admin);
    closers.push(live.close);
    const got: TaskEventDto[] = [];
    await new Promise<void>((resolve, reject) => {
      live.client.tasks.onEvent.subscribe(
        {},
        { onStarted: () => resolve(), onData: (d) => got.push(d.data as TaskEventDto), onError: reject },
      );
    });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push((await a.api.tasks.create.mutate({ title: `watched ${i}`, input: { script: "true" } })).id);
    }
    await settle(a.api, ids);
    for (const id of ids) {
      const { rows } = await sql.query<{ s: string }>(
        `SELECT seq::text AS s FROM "${cluster.schema}".task_events WHERE task_id = $1 ORDER BY seq`,
        [id],
      );
      const expected = rows.map((r) => r.s);
      expect(expected.length).toBeGreaterThan(2);
      // Live on B: exactly the task's events, in order, none missing, none twice.
      await waitFor(
        `B to receive every event of task ${id}`,
        async () => got.filter((e) => e.taskId === id).map((e) => e.seq),
        (seqs) => seqs.length >= expected.length,
      );
      expect(got.filter((e) => e.taskId === id).map((e) => e.seq)).toEqual(expected);
      // Resume by lastEventId on a third process: the rest of the task's events, from the table.
      const fromC = c.wsAs(admin);
      closers.push(fromC.close);
      const replayed: string[] = [];
      const sub = fromC.client.tasks.onEvent.subscribe(
        { taskId: id, lastEventId: expected[0] as string },
        { onData: (d) => replayed.push((d.data as TaskEventDto).seq) },
      );
      await waitFor(
        "C to replay after the first event",
        async () => replayed.length,
        (n) => n >= expected.length - 1,
      );
      sub.unsubscribe();
      expect(replayed).toEqual(expected.slice(1));
    }
    const all = got.map((e) => BigInt(e.seq));
    expect(all.every((s, i) => i === 0 || s > (all[i - 1] as bigint))).toBe(true);
  });

  it("executes tasks submitted to A exactly once across the processes, and every process shows the same metrics", async () => {
    const before = await a.api.metrics.snapshot.query();
    const ids: string[] = [];
    for (let i = 0; i < 24; i++) {
      ids.push((await a.api.tasks.create.mutate({ title: `spread ${i}`, input: { script: "true" } })).id);
    }
    const tasks = await settle(b.api, ids);
    expect(tasks.map((t) => t.state)).toEqual(ids.map(() => "accepted"));
    for (const t of tasks) expect(t.attempts.filter((x) => x.state === "completed")).toHaveLength(1);
    const keys = new Set(tasks.flatMap((t) => t.attempts.map((x) => `${t.id}:${x.number}`)));
    const ran = [...worker.requests].filter((r) => ids.includes(r.taskId));
    expect(new Set(ran.map((r) => `${r.taskId}:${r.attempt}`))).toEqual(keys);
    expect([...worker.executions.values()].every((n) => n === 1)).toBe(true);
    expect([...worker.maxConcurrentPerTask.values()].every((n) => n === 1)).toBe(true);

    // Live metrics are computed on each process from the shared event log: the same totals everywhere.
    const accepted = before.window.accepted + ids.length;
    const snapshots = await waitFor(
      "every process to count the accepted tasks",
      () => Promise.all([a, b, c].map((n) => n.api.metrics.snapshot.query())),
      (ss) => ss.every((s) => s.window.accepted === accepted && s.queueDepth === 0 && s.running === 0),
    );
    const [first, ...others] = snapshots.map((s) => s.window);
    for (const w of others) expect(w).toEqual(first);
  });

  it("shows a chat message and typing sent through A to an operator on B; sessions and the rate limit hold across processes", async () => {
    const password = randomBytes(18).toString("base64url");
    await a.api.users.create.mutate({ username: "second", role: "operator", password });
    // Signed in on B, token made with that session on C: sessions are in the database.
    const second = await tokenThroughSession(b, c, "second", password);
    const { id } = await a.api.chat.sessions.create.mutate({ title: "Across processes" });

    const onB = b.wsAs(second);
    closers.push(onB.close);
    const messages: ChatMessageDto[] = [];
    const typing: TypingEvent[] = [];
    await Promise.all([
      new Promise<void>((resolve, reject) =>
        onB.client.chat.onMessage.subscribe(
          { sessionId: id },
          { onStarted: () => resolve(), onData: (d) => messages.push(d.data as ChatMessageDto), onError: reject },
        ),
      ),
      new Promise<void>((resolve, reject) =>
        onB.client.chat.onTyping.subscribe(
          { sessionId: id },
          { onStarted: () => resolve(), onData: (e) => typing.push(e as TypingEvent), onError: reject },
        ),
      ),
    ]);
    await a.api.chat.typing.mutate({ sessionId: id });
    const sent = await a.api.chat.send.mutate({ sessionId: id, content: "/help", clientId: randomUUID() });
    await waitFor(
      "the message and the assistant's answer (written on A) to reach B",
      async () => messages.map((m) => m.role),
      (roles) => roles.includes("operator") && roles.includes("assistant"),
    );
    expect(messages.find((m) => m.role === "operator")).toMatchObject({ id: sent.message.id, content: "/help" });
    await waitFor(
      "the typing notice to reach B",
      async () => typing.length,
      (n) => n > 0,
    );
    expect(typing[0]).toMatchObject({ sessionId: id, name: expect.any(String) });
    expect(typing.every((t) => t.sessionId === id)).toBe(true);

    // The per-user limit counts messages sent through every process.
    const send = (node: ClusterNode) =>
      httpClient(node.url, second).chat.send.mutate({ sessionId: id, content: "/help", clientId: randomUUID() });
    for (const node of [a, b, a, b].slice(0, LIMIT_PER_MINUTE)) await send(node);
    await expect(send(c)).rejects.toMatchObject({ data: { code: "TOO_MANY_REQUESTS" } });
  });

  it("a breaker tripped on A and reset on B is closed again on A and C, and work reaches the worker again", async () => {
    const [counter] = await a.api.workers.list.query();
    if (!counter) throw new Error("the cluster has no worker");
    await a.api.workers.trip.mutate({ id: counter.id, reason: "cluster test" });
    expect((await c.api.workers.get.query({ id: counter.id })).breaker.state).toBe("tripped");
    await b.api.workers.reset.mutate({ id: counter.id });
    expect((await a.api.workers.get.query({ id: counter.id })).breaker.state).toBe("closed");
    expect((await c.api.workers.get.query({ id: counter.id })).breaker.state).toBe("closed");
    const created = await a.api.tasks.create.mutate({ title: "after a reset elsewhere", capability: "script" });
    const [done] = await settle(a.api, [created.id]);
    expect(done?.attempts.map((x) => x.worker?.id)).toContain(counter.id);
  });

  it("ends a token revoked through A on B: HTTP at once, and B closes the WebSocket opened with it", async () => {
    const password = randomBytes(18).toString("base64url");
    await a.api.users.create.mutate({ username: "third", role: "operator", password });
    const token = await tokenThroughSession(c, b, "third", password);
    // A raw WebSocket on B, as the tRPC client speaks it, with one subscription running.
    const ws = new WebSocket(`ws://127.0.0.1:${b.port}/trpc?connectionParams=1`);
    const closed = new Promise<number>((resolve) => ws.once("close", (code) => resolve(code)));
    const started = new Promise<void>((resolve, reject) => {
      ws.on("message", (raw) => {
        const msg = JSON.parse(String(raw)) as { id?: number; result?: { type?: string }; error?: unknown };
        if (msg.id === 1 && msg.result?.type === "started") resolve();
        if (msg.id === 1 && msg.error) reject(new Error(JSON.stringify(msg.error)));
      });
    });
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    ws.send(JSON.stringify({ method: "connectionParams", data: { token } }));
    ws.send(JSON.stringify({ id: 1, method: "subscription", params: { path: "tasks.onEvent", input: { json: {} } } }));
    await started;
    expect(await httpClient(b.url, token).auth.me.query()).toMatchObject({ user: { username: "third" } });

    const listed = await a.api.tokens.list.query({ all: true });
    const target = listed.find((t) => t.username === "third" && !t.revokedAt);
    if (!target) throw new Error(`no token of user third among ${JSON.stringify(listed).slice(0, 500)}`);
    await a.api.tokens.revoke.mutate({ id: target.id });

    await expect(httpClient(b.url, token).tasks.list.query({})).rejects.toMatchObject({
      data: { code: "UNAUTHORIZED" },
    });
    expect(await closed).toBe(4401);
  });

  it("re-attaches the attempts of a process killed with SIGKILL on the others, each run once", async () => {
    worker.set({ durationMs: 1500 });
    const ids: string[] = [];
    for (let i = 0; i < 9; i++) {
      ids.push((await a.api.tasks.create.mutate({ title: `survive ${i}`, input: { script: "true" } })).id);
    }
    // Kill whichever process holds running attempts (the lease owner names the pid).
    const holders = await waitFor(
      "an attempt to run",
      async () =>
        (
          await sql.query<{ lease_owner: string }>(
            `SELECT lease_owner FROM "${cluster.schema}".attempts WHERE state = 'running' AND lease_owner IS NOT NULL`,
          )
        ).rows.map((r) => r.lease_owner),
      (owners) => owners.length > 0,
    );
    const victim = cluster.nodes.find((n) => holders.some((o) => o.includes(`:${n.child.pid}:`)));
    if (!victim) throw new Error(`no process owns the running attempts: ${holders.join(", ")}`);
    victim.child.kill("SIGKILL");
    await victim.exited;
    const survivor = cluster.nodes.find((n) => n !== victim) as ClusterNode;

    const tasks = await settle(survivor.api, ids, 90_000);
    const notAccepted = tasks.filter((t) => t.state !== "accepted");
    expect(notAccepted.map((t) => ({ state: t.state, attempts: t.attempts.map((x) => [x.state, x.error]) }))).toEqual(
      [],
    );
    // The survivor re-attached to the victim's attempts by their Idempotency-Key: the same attempts, none
    // lost, none counted, none run again.
    for (const t of tasks) {
      expect(t.attempts.map((x) => [x.number, x.state])).toEqual([[1, "completed"]]);
      expect(t.failures).toBe(0);
    }
    const resent = [...worker.executions.keys()].filter(
      (key) => worker.requests.filter((r) => `${r.taskId}:${r.attempt}` === key).length > 1,
    );
    expect(resent.length).toBeGreaterThan(0);
    expect([...worker.executions.values()].every((n) => n === 1)).toBe(true);
    expect([...worker.maxConcurrentPerTask.values()].every((n) => n === 1)).toBe(true);
  }, 120_000);
});

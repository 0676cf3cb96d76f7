import http from "node:http";
import type { AddressInfo } from "node:net";
import { createTRPCClient, createWSClient, httpBatchLink, wsLink } from "@trpc/client";
import superjson from "superjson";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { AppRouter } from "../src/server/router.js";
import type { ChatMessageDto, TypingEvent } from "../src/shared/chat.js";
import { DATABASES } from "./helpers/databases.js";
import { ADMIN_TOKEN, type EngineApp, startEngineApp, waitFor } from "./helpers/fault-worker.js";
import { tokenFor } from "./helpers/server.js";

type Client = ReturnType<typeof createTRPCClient<AppRouter>>;
let n = 0;
const cid = () => `client-${process.pid}-${++n}-${Math.random().toString(36).slice(2, 8)}`;

/** A real chat worker: streams each word of its answer as an NDJSON log line, then the result. */
async function startChatWorker() {
  const seen: { spec: { capability: string; input: { messages: { content: string }[] } } }[] = [];
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (req.url === "/health") {
      res.writeHead(200, { "content-type": "application/json" });
      return void res.end(JSON.stringify({ status: "ok", protocol: 1, capabilities: ["chat"], inFlight: 0 }));
    }
    if (req.url !== "/execute") return void res.writeHead(404).end();
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    seen.push(body);
    const last = body.spec.input.messages.at(-1)?.content ?? "";
    res.writeHead(200, { "content-type": "application/x-ndjson" });
    for (const word of ["You", "said:", last]) {
      res.write(`${JSON.stringify({ type: "log", stream: "stdout", line: word })}\n`);
      await new Promise((r) => setTimeout(r, 30));
    }
    res.end(
      `${JSON.stringify({ type: "result", result: { status: "completed", summary: "answered", artifacts: [] } })}\n`,
    );
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe.each(DATABASES)("chat on %s", (kind) => {
  let s: EngineApp;
  let viewer: Client;
  let ws: { client: Client; close(): void }[] = [];
  let otherToken: string;

  const wsAs = (token: string) => {
    const c = createWSClient({
      url: `${s.url.replace("http", "ws")}/trpc`,
      WebSocket: WebSocket as never,
      connectionParams: { token },
    });
    const entry = {
      client: createTRPCClient<AppRouter>({ links: [wsLink({ client: c, transformer: superjson })] }),
      close: () => c.close(),
    };
    ws.push(entry);
    return entry.client;
  };
  const httpAs = (token: string) =>
    createTRPCClient<AppRouter>({
      links: [
        httpBatchLink({ url: `${s.url}/trpc`, transformer: superjson, headers: { authorization: `Bearer ${token}` } }),
      ],
    });

  beforeAll(async () => {
    s = await startEngineApp(kind, { CHAT_MESSAGES_PER_MINUTE: "40" });
    viewer = httpAs(await tokenFor(s.services, "watcher", "viewer"));
    otherToken = await tokenFor(s.services, "second-operator", "operator");
  });
  afterAll(async () => {
    for (const c of ws) c.close();
    ws = [];
    await s?.stop();
  });

  const messagesOf = async (sessionId: string) => (await s.http.chat.messages.query({ sessionId, limit: 200 })).items;
  const lastAssistant = async (sessionId: string) =>
    (await messagesOf(sessionId)).filter((m) => m.role === "assistant").at(-1);
  const send = async (sessionId: string, content: string, client: Client = s.http) =>
    (await client.chat.send.mutate({ sessionId, content, clientId: cid() })).message;
  const answerTo = async (sessionId: string, content: string) => {
    const before = (await messagesOf(sessionId)).length;
    await send(sessionId, content);
    await s.services.chat.idle();
    const after = await messagesOf(sessionId);
    expect(after.length).toBe(before + 2);
    return after.at(-1) as ChatMessageDto;
  };

  it("creates, lists, renames and ends sessions; an ended session refuses messages", async () => {
    const created = await s.http.chat.sessions.create.mutate({ title: "Release night" });
    expect((await s.http.chat.sessions.list.query()).map((x) => x.id)).toContain(created.id);
    const renamed = await s.http.chat.sessions.rename.mutate({ sessionId: created.id, title: "Release night 2" });
    expect(renamed.title).toBe("Release night 2");
    const ended = await s.http.chat.sessions.end.mutate({ sessionId: created.id });
    expect(ended.endedAt).toBeInstanceOf(Date);
    expect((await s.http.chat.sessions.end.mutate({ sessionId: created.id })).endedAt).toEqual(ended.endedAt);
    expect((await s.http.chat.sessions.list.query()).map((x) => x.id)).not.toContain(created.id);
    expect((await s.http.chat.sessions.list.query({ includeEnded: true })).map((x) => x.id)).toContain(created.id);
    await expect(send(created.id, "anyone?")).rejects.toMatchObject({
      data: { code: "PRECONDITION_FAILED" },
      message: expect.stringMatching(/was ended.*start a new session/),
    });
    const system = (await messagesOf(created.id)).filter((m) => m.role === "system").map((m) => m.content);
    expect(system).toEqual([
      expect.stringMatching(/started the session/),
      expect.stringMatching(/renamed the session to "Release night 2"/),
      expect.stringMatching(/ended the session/),
    ]);
  });

  it("answers NOT_FOUND for an unknown session and BAD_REQUEST for bad input, storing nothing", async () => {
    const unknown = "00000000-0000-4000-8000-000000000000";
    for (const call of [
      () => s.http.chat.messages.query({ sessionId: unknown }),
      () => s.http.chat.send.mutate({ sessionId: unknown, content: "hi", clientId: cid() }),
      () => s.http.chat.sessions.end.mutate({ sessionId: unknown }),
    ]) {
      await expect(call()).rejects.toMatchObject({ data: { code: "NOT_FOUND" } });
    }
    const { id } = await s.http.chat.sessions.create.mutate({});
    const before = await s.db.prisma.chatMessage.count();
    await expect(s.http.chat.send.mutate({ sessionId: id, content: "   ", clientId: cid() })).rejects.toThrow(
      /Write a message first/,
    );
    await expect(
      s.http.chat.send.mutate({ sessionId: id, content: "x".repeat(4001), clientId: cid() }),
    ).rejects.toThrow(/at most 4000 characters/);
    await expect(s.http.chat.send.mutate({ sessionId: id, content: "hi", clientId: "bad id!" })).rejects.toThrow(
      /clientId/,
    );
    await expect(s.http.chat.send.mutate({ sessionId: "nope", content: "hi", clientId: cid() })).rejects.toThrow(
      /Session id must be a UUID/,
    );
    await expect(s.http.chat.messages.query({ sessionId: id, cursor: "abc" })).rejects.toThrow(/cursor/);
    expect(await s.db.prisma.chatMessage.count()).toBe(before);
  });

  it("lets a viewer read but not send, create or type", async () => {
    const { id } = await s.http.chat.sessions.create.mutate({ title: "Read only" });
    expect((await viewer.chat.messages.query({ sessionId: id })).items.length).toBe(1);
    for (const call of [
      () => viewer.chat.send.mutate({ sessionId: id, content: "hi", clientId: cid() }),
      () => viewer.chat.sessions.create.mutate({}),
      () => viewer.chat.typing.mutate({ sessionId: id }),
    ]) {
      await expect(call()).rejects.toMatchObject({ data: { code: "FORBIDDEN" } });
    }
  });

  it("stores a resent message once and answers it once (idempotent by clientId)", async () => {
    const { id } = await s.http.chat.sessions.create.mutate({});
    const clientId = cid();
    const first = await s.http.chat.send.mutate({ sessionId: id, content: "/help", clientId });
    const again = await s.http.chat.send.mutate({ sessionId: id, content: "/help", clientId });
    const raced = await Promise.all(
      [1, 2, 3].map(() => s.http.chat.send.mutate({ sessionId: id, content: "/help", clientId })),
    );
    expect(first.duplicate).toBe(false);
    expect(again).toEqual({ message: first.message, duplicate: true });
    expect(raced.every((r) => r.message.id === first.message.id && r.duplicate)).toBe(true);
    await s.services.chat.idle();
    const all = await messagesOf(id);
    expect(all.filter((m) => m.role === "operator")).toHaveLength(1);
    expect(all.filter((m) => m.role === "assistant")).toHaveLength(1);
    // The same clientId from another user is another message.
    const other = await httpAs(otherToken).chat.send.mutate({ sessionId: id, content: "/help", clientId });
    expect(other.duplicate).toBe(false);
    await s.services.chat.idle();
  });

  it("replays from lastEventId, then goes live, without gap or duplicate", async () => {
    const { id } = await s.http.chat.sessions.create.mutate({ title: "Replay" });
    for (let i = 0; i < 4; i++) await send(id, `early ${i}`);
    await s.services.chat.idle();
    const early = await messagesOf(id);
    const from = early[2] as ChatMessageDto;
    const client = wsAs(ADMIN_TOKEN);
    const got: { id: string; data: ChatMessageDto }[] = [];
    const sends: Promise<unknown>[] = [];
    let sub: { unsubscribe(): void } | undefined;
    const total = async () =>
      s.db.prisma.chatMessage.count({ where: { sessionId: id, version: { gt: BigInt(from.version) } } });
    await new Promise<void>((resolve, reject) => {
      sub = client.chat.onMessage.subscribe(
        { sessionId: id, lastEventId: from.version },
        {
          onStarted() {
            for (let i = 0; i < 8; i++) sends.push(send(id, `live ${i}`, i % 2 ? httpAs(otherToken) : s.http));
            resolve();
          },
          onData: (d) => got.push(d as unknown as { id: string; data: ChatMessageDto }),
          onError: reject,
        },
      );
    });
    await Promise.all(sends);
    await s.services.chat.idle();
    const expected = await total();
    await waitFor(
      "every change to arrive",
      async () => got.length,
      (len) => len >= expected,
    );
    sub?.unsubscribe();
    const rows = await s.db.prisma.chatMessage.findMany({
      where: { sessionId: id, version: { gt: BigInt(from.version) } },
      orderBy: { version: "asc" },
    });
    expect(got.map((g) => g.id)).toEqual(rows.map((r) => r.version.toString()));
    expect(got.map((g) => g.data.content).filter((c) => c.startsWith("live"))).toHaveLength(8);
    expect(new Set(got.map((g) => g.id)).size).toBe(got.length);
  });

  it("runs commands with the sender's identity and answers with task links", async () => {
    const { id } = await s.http.chat.sessions.create.mutate({ title: "Ops" });
    const created = await answerTo(id, "/task Rotate the staging certificates\necho rotated > ROTATED");
    expect(created.links).toHaveLength(1);
    const link = created.links[0] as { taskId: string; title: string };
    expect(link.title).toBe("Rotate the staging certificates");
    const task = await s.http.tasks.get.query({ id: link.taskId });
    const direct = await s.http.tasks.create.mutate({ title: "made through the API by the same caller" });
    expect(task.createdBy).toBe(direct.createdBy);
    expect(created.content).toMatch(/Submitted "Rotate the staging certificates"/);

    const listed = await answerTo(id, "/tasks");
    expect(listed.links.map((l) => l.taskId)).toContain(link.taskId);

    const canceled = await answerTo(id, `/cancel ${link.taskId.slice(0, 8)} not needed after all`);
    expect(canceled.content).toMatch(/Canceled "Rotate the staging certificates": it is canceled/);
    const after = await s.http.tasks.get.query({ id: link.taskId });
    expect(after.state).toBe("canceled");
    expect(after.cancelReason).toBe("not needed after all");

    const retried = await answerTo(id, `/retry ${link.taskId}`);
    expect(retried.content).toMatch(/is queued again/);
    expect(retried.links).toEqual([{ taskId: link.taskId, title: link.title }]);

    const status = await answerTo(id, "/status");
    expect(status.content).toMatch(/^Queue: \d+ waiting, \d+ running, \d+ awaiting approval\./);

    const unknown = await answerTo(id, "/cancel 99999999");
    expect(unknown.content).toMatch(/No task id starts with 99999999/);
    const bad = await answerTo(id, "/tasks sleeping");
    expect(bad.content).toMatch(/Unknown state "sleeping".*Type \/help/s);
    expect((await answerTo(id, "/help")).content).toContain("/retry <task id>");
  });

  it("says no chat worker is available and lists the commands, for free text", async () => {
    const { id } = await s.http.chat.sessions.create.mutate({});
    const reply = await answerTo(id, "How is the deploy going?");
    expect(reply.content).toMatch(/No chat worker is available/);
    expect(reply.content).toContain("/task <title>");
  });

  it("streams a chat worker's answer into the assistant's message as it arrives", async () => {
    const worker = await startChatWorker();
    const reg = await s.http.workers.register.mutate({
      name: "talker",
      url: worker.url,
      capabilities: ["chat"],
      maxConcurrency: 2,
    });
    try {
      const { id } = await s.http.chat.sessions.create.mutate({ title: "Talk" });
      const client = wsAs(ADMIN_TOKEN);
      const seen: ChatMessageDto[] = [];
      const listening = s.services.chat.hub.subscriberCount;
      const sub = client.chat.onMessage.subscribe(
        { sessionId: id },
        { onData: (d) => seen.push(d.data as ChatMessageDto) },
      );
      // Live once the server's hub holds the subscription (it starts "from now on").
      await expect.poll(() => s.services.chat.hub.subscriberCount).toBeGreaterThan(listening);
      await send(id, "ship it");
      await s.services.chat.idle();
      const reply = await lastAssistant(id);
      expect(reply).toMatchObject({ status: "complete", content: "You\nsaid:\nship it" });
      await waitFor(
        "the final version to arrive",
        async () => seen.filter((m) => m.id === reply?.id),
        (v) => v.some((m) => m.status === "complete"),
      );
      sub.unsubscribe();
      const versions = seen.filter((m) => m.id === reply?.id);
      expect(versions[0]?.status).toBe("streaming");
      expect(versions.at(-1)?.content).toBe("You\nsaid:\nship it");
      expect(worker.seen[0]?.spec.capability).toBe("chat");
      expect(worker.seen[0]?.spec.input.messages.at(-1)?.content).toBe("ship it");
    } finally {
      await s.http.workers.remove.mutate({ id: reg.id });
      await worker.close();
    }
  });

  it("does not send free text to a chat worker an admin paused, and does again once it is resumed", async () => {
    const worker = await startChatWorker();
    const reg = await s.http.workers.register.mutate({
      name: "paused-talker",
      url: worker.url,
      capabilities: ["chat"],
      maxConcurrency: 2,
    });
    try {
      await s.http.workers.pause.mutate({ id: reg.id, reason: "maintenance" });
      const { id } = await s.http.chat.sessions.create.mutate({ title: "Paused" });
      const paused = await answerTo(id, "anyone there?");
      expect(paused.content).toMatch(/No chat worker is available/);
      expect(worker.seen).toHaveLength(0);
      await s.http.workers.resume.mutate({ id: reg.id });
      const resumed = await answerTo(id, "and now?");
      expect(resumed.content).toBe("You\nsaid:\nand now?");
      expect(worker.seen).toHaveLength(1);
    } finally {
      await s.http.workers.remove.mutate({ id: reg.id });
      await worker.close();
    }
  });

  it("shows one operator's typing to the others in the session", async () => {
    const { id } = await s.http.chat.sessions.create.mutate({});
    const watcher = wsAs(otherToken);
    const got: TypingEvent[] = [];
    const sub = watcher.chat.onTyping.subscribe({ sessionId: id }, { onData: (e) => got.push(e as TypingEvent) });
    // Typing is not replayed, and nothing says when the subscription is live: both type until the watcher
    // sees someone typing (each user's notices are limited to two a second, so this sends few).
    await waitFor(
      "the typing event",
      async () => {
        await httpAs(otherToken).chat.typing.mutate({ sessionId: id });
        await s.http.chat.typing.mutate({ sessionId: id });
        return got.length;
      },
      (len) => len >= 1,
    );
    sub.unsubscribe();
    expect(new Set(got.map((e) => e.sessionId))).toEqual(new Set([id]));
    // The watcher's own typing never comes back to it; the other operator's does.
    expect(got.some((e) => e.userId === "second-operator")).toBe(false);
    expect(got[0]?.userId).toEqual(expect.any(String));
  });

  it("pages back through a long session with a cursor", async () => {
    const { id } = await s.http.chat.sessions.create.mutate({});
    const client = httpAs(otherToken);
    for (let i = 0; i < 7; i++) await send(id, `/help ${i}`.replace(/ \d$/, ""), client);
    await s.services.chat.idle();
    const all = await messagesOf(id);
    const pages: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { items: ChatMessageDto[]; nextCursor: string | null } = await s.http.chat.messages.query({
        sessionId: id,
        cursor,
        limit: 4,
      });
      pages.unshift(...page.items.map((m) => m.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(pages).toEqual(all.map((m) => m.id));
  });
});

describe("chat rate limit", () => {
  it("refuses the message over the per-user limit with a clear error; resends still work", async () => {
    const s = await startEngineApp("pglite", { CHAT_MESSAGES_PER_MINUTE: "3" });
    try {
      const { id } = await s.http.chat.sessions.create.mutate({});
      const first = await s.http.chat.send.mutate({ sessionId: id, content: "/help", clientId: cid() });
      for (let i = 0; i < 2; i++) await s.http.chat.send.mutate({ sessionId: id, content: "/help", clientId: cid() });
      await expect(s.http.chat.send.mutate({ sessionId: id, content: "/help", clientId: cid() })).rejects.toMatchObject(
        {
          data: { code: "TOO_MANY_REQUESTS" },
          message: expect.stringMatching(/3 messages in the last minute, the limit; try again in \d+ s/),
        },
      );
      const resend = await s.http.chat.send.mutate({
        sessionId: id,
        content: "/help",
        clientId: first.message.clientId as string,
      });
      expect(resend.duplicate).toBe(true);
      await s.services.chat.idle();
    } finally {
      await s.stop();
    }
  });
});

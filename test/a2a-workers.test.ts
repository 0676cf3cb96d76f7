import { randomUUID } from "node:crypto";
import { TRPCClientError } from "@trpc/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AppRouter } from "../src/server/router.js";
import { TERMINAL_STATES } from "../src/shared/task-state.js";
import { type RunningAgent, startA2AAgent } from "./helpers/a2a-agent.js";
import { DATABASES } from "./helpers/databases.js";
import { deadWorkerUrl, type EngineApp, startEngineApp, waitFor } from "./helpers/fault-worker.js";
import { allEvents, withEvents } from "./helpers/task-events.js";

const TOKEN = "a2a-agent-secret-token";

/** The error a call was refused with (a call that succeeds fails the test). */
async function refusal(call: Promise<unknown>): Promise<TRPCClientError<AppRouter>> {
  const err = await call.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TRPCClientError);
  return err as TRPCClientError<AppRouter>;
}

// A loaded machine (two cores, several suites at once) makes a round trip slow: each test gets 2 minutes.
describe.each(DATABASES)("A2A workers on %s", { timeout: 120_000 }, (kind) => {
  let s: EngineApp;
  let streaming: RunningAgent;
  let polled: RunningAgent;

  beforeAll(async () => {
    streaming = await startA2AAgent({ streaming: true, token: TOKEN, name: "Streaming agent", skills: ["a2a_stream"] });
    polled = await startA2AAgent({ streaming: false, name: "Polled agent", skills: ["a2a.poll"] });
    s = await startEngineApp(kind, { A2A_POLL_INTERVAL_MS: "50" });
    await s.http.workers.register.mutate({
      name: "streamer",
      protocol: "a2a",
      url: streaming.cardUrl,
      maxConcurrency: 4,
      token: TOKEN,
    });
    // The agent's base URL: the card's well-known path is added.
    await s.http.workers.register.mutate({ name: "poller", protocol: "a2a", url: polled.url, maxConcurrency: 4 });
  });
  afterAll(async () => {
    await s?.stop();
    await streaming?.stop();
    await polled?.stop();
  });

  const settled = (id: string, timeoutMs = 30_000) =>
    waitFor(
      `task ${id} to settle`,
      () => withEvents(s.http, { id }),
      (t) => TERMINAL_STATES.includes(t.state) || t.state === "changes_requested",
      timeoutMs,
    );

  const create = (capability: string, a2a: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
    s.http.tasks.create.mutate({
      title: `A2A ${String(a2a.act)}`,
      description: "Write the files the agent is asked for.",
      mode: "chore",
      capability,
      input: { a2a },
      acceptanceCriteria: [{ text: "The agent says what it did" }],
      ...extra,
    });

  it("registers an agent by its card: skills as capabilities, streaming and auth scheme read, token kept secret", async () => {
    const workers = await s.http.workers.list.query();
    const w = workers.find((x) => x.name === "streamer");
    expect(w).toMatchObject({
      protocol: "a2a",
      capabilities: ["a2a_stream"],
      capabilitiesFromCard: true,
      hasToken: true,
      card: { name: "Streaming agent", streaming: true, auth: "http bearer" },
    });
    expect(w?.card?.skills.map((x) => x.id)).toEqual(["a2a_stream"]);
    expect(workers.find((x) => x.name === "poller")).toMatchObject({
      capabilities: ["a2a.poll"],
      card: { name: "Polled agent", streaming: false, auth: "none" },
    });
    expect(JSON.stringify(workers)).not.toContain(TOKEN);
    // The token went to the agent with the card request, in the header its card names.
    expect(streaming.unauthorized).toBe(0);
  });

  it("refuses an agent whose card cannot be read when its capabilities were to come from it, and changes nothing", async () => {
    const before = (await s.http.workers.list.query()).length;
    const err = await refusal(
      s.http.workers.register.mutate({ name: "nowhere", protocol: "a2a", url: await deadWorkerUrl() }),
    );
    expect(err.message).toMatch(/Could not read the Agent Card of nowhere/);
    // A v1 worker still needs a capability, said in the form's words.
    const v1 = await refusal(s.http.workers.register.mutate({ name: "plain", url: "http://127.0.0.1:9/" }));
    expect(v1.message).toMatch(/at least one capability/);
    expect((await s.http.workers.list.query()).length).toBe(before);
  });

  it("streams a task: status messages become log lines, the artifact is stored, the council judges it", async () => {
    const created = await create("a2a_stream", { act: "complete" });
    const t = await settled(created.id);
    expect(t.state).toBe("accepted");
    const a = t.attempts[0];
    expect(a).toMatchObject({ number: 1, state: "completed", worker: { name: "streamer" } });
    expect(a?.remoteTaskId).toMatch(/.+/);
    expect(streaming.tasks.get(a?.remoteTaskId ?? "")?.state).toBeDefined();
    expect(a?.summary).toBe("Wrote hello.txt.");
    expect(a?.artifacts.map((x) => [x.path, x.operation, x.content])).toEqual([
      ["hello.txt", "create", "hello from the agent\n"],
    ]);
    const logs = t.events.filter((e) => e.type === "log").map((e) => String(e.data.line));
    expect(logs).toContain("Working on A2A complete");
    expect(t.events.some((e) => e.type === "progress" && e.data.message === "A2A task working")).toBe(true);
    // The task went to the agent as text and as data, once.
    expect(streaming.messages.some((m) => m.includes("A2A complete") && m.includes("The agent says what it did"))).toBe(
      true,
    );
    expect(streaming.started.filter((k) => k === `${created.id}:1`)).toHaveLength(1);
  });

  it("drives an agent that does not stream with message/send and tasks/get", async () => {
    const created = await create("a2a.poll", { act: "steps", steps: 3, stepMs: 60 });
    const t = await settled(created.id);
    expect(t.state).toBe("accepted");
    expect(t.attempts[0]?.artifacts.map((x) => x.path)).toEqual(["steps.txt"]);
    expect(t.attempts[0]?.summary).toBe("All 3 steps done.");
    expect(polled.started).toContain(`${created.id}:1`);
  });

  it("ends the attempt with the agent's message when it fails or rejects the task", async () => {
    const failed = await create("a2a_stream", { act: "fail", message: "No disk left" }, { riskTier: 3 });
    const rejected = await create("a2a.poll", { act: "reject", message: "Not my kind of work" }, { riskTier: 3 });
    const [f, r] = await Promise.all([settled(failed.id), settled(rejected.id)]);
    expect(f.state).toBe("failed");
    expect(f.attempts[0]?.error).toContain("A2A task failed: No disk left");
    expect(r.state).toBe("failed");
    expect(r.attempts[0]?.error).toContain("A2A task rejected: Not my kind of work");
    // The agent's word, not a fault of the worker: no retried try.
    expect(f.events.filter((e) => e.type === "attempt_try_failed")).toHaveLength(0);
  });

  it("cancels with tasks/cancel, confirmed when the agent reports the task canceled", async () => {
    const created = await create("a2a_stream", { act: "steps", steps: 200, stepMs: 50 });
    const running = await waitFor(
      "the agent's task to be recorded",
      () => s.http.tasks.get.query({ id: created.id }),
      (t) => t.state === "running" && !!t.attempts[0]?.remoteTaskId,
    );
    const remoteId = running.attempts[0]?.remoteTaskId as string;
    await s.http.tasks.cancel.mutate({ id: created.id, reason: "no_longer_needed" });
    const t = await settled(created.id);
    expect(t.state).toBe("canceled");
    expect(t.cancelConfirmed).toBe(true);
    expect(streaming.cancels).toContain(remoteId);
    expect(streaming.tasks.get(remoteId)?.state).toBe(5 /* TASK_STATE_CANCELED */);
  });

  it("waits for an operator's answer on input-required, without the idle timeout, then goes on", async () => {
    // Tier 3's idle timeout per try is 1 s here.
    const created = await create("a2a_stream", { act: "ask", question: "Which greeting?" }, { riskTier: 3 });
    const asked = await waitFor(
      "the agent's question",
      () => s.http.tasks.get.query({ id: created.id }),
      (t) => t.attempts[0]?.inputRequest !== null && t.attempts[0]?.inputRequest !== undefined,
    );
    expect(asked.state).toBe("running");
    expect(asked.attempts[0]?.inputRequest).toMatchObject({ kind: "input-required", question: "Which greeting?" });
    const askedAt = Date.parse(asked.attempts[0]?.inputRequest?.askedAt ?? "");
    // Still waiting three idle timeouts later, not failed by one.
    const still = await waitFor(
      "three idle timeouts to pass while the question is open",
      () => s.http.tasks.get.query({ id: created.id }),
      (t) => t.state !== "running" || Date.now() - askedAt > 3_000,
    );
    expect(still.state).toBe("running");
    expect(still.attempts[0]?.inputRequest?.question).toBe("Which greeting?");

    // A bad answer changes nothing; a task that is not waiting cannot be answered.
    const empty = await refusal(s.http.tasks.answer.mutate({ id: created.id, text: "   " }));
    expect(empty.data?.code).toBe("BAD_REQUEST");
    const done = await create("a2a_stream", { act: "complete" });
    await settled(done.id);
    const notWaiting = await refusal(s.http.tasks.answer.mutate({ id: done.id, text: "hi" }));
    expect(notWaiting.data?.code).toBe("CONFLICT");

    await s.http.tasks.answer.mutate({ id: created.id, text: "Good morning" });
    const t = await settled(created.id);
    expect(t.state).toBe("accepted");
    expect(t.attempts).toHaveLength(1);
    expect(t.attempts[0]?.inputRequest).toBeNull();
    expect(t.attempts[0]?.artifacts.map((x) => [x.path, x.content])).toEqual([["answer.txt", "Good morning\n"]]);
    expect(streaming.messages).toContain("Good morning");
    const kinds = t.events.map((e) => e.type);
    expect(kinds.indexOf("input_required")).toBeGreaterThan(-1);
    expect(kinds.indexOf("input_answered")).toBeGreaterThan(kinds.indexOf("input_required"));
    expect(t.events.find((e) => e.type === "input_answered")?.data).toMatchObject({ text: "Good morning" });
    expect(t.events.filter((e) => e.type === "attempt_try_failed")).toHaveLength(0);
    const audit = await s.http.audit.list.query({ action: "task.answer" });
    expect(audit.items.some((x) => x.resourceId === created.id)).toBe(true);
  });

  it("takes the answer from chat: /answer <id> <text>", async () => {
    const created = await create("a2a.poll", { act: "auth" });
    await waitFor(
      "the agent's auth request",
      () => s.http.tasks.get.query({ id: created.id }),
      (t) => t.attempts[0]?.inputRequest?.kind === "auth-required",
    );
    const session = await s.http.chat.sessions.create.mutate({ title: "Answers" });
    await s.http.chat.send.mutate({
      sessionId: session.id,
      clientId: randomUUID(),
      content: `/answer ${created.id.slice(0, 8)}`,
    });
    await s.http.chat.send.mutate({
      sessionId: session.id,
      clientId: randomUUID(),
      content: `/answer ${created.id.slice(0, 8)} deploy-key-1234\nfor staging`,
    });
    const replies = await waitFor(
      "the assistant's replies",
      () => s.http.chat.messages.query({ sessionId: session.id }),
      (m) => m.items.filter((x) => x.role === "assistant").length >= 2,
    );
    const texts = replies.items.filter((x) => x.role === "assistant").map((x) => x.content);
    expect(texts.some((c) => c.includes("Usage: /answer <task id> <text>"))).toBe(true);
    expect(texts.some((c) => c.includes("Answered the agent's question on attempt 1"))).toBe(true);
    const t = await settled(created.id);
    expect(t.state).toBe("accepted");
    expect(t.attempts[0]?.artifacts.map((x) => [x.path, x.content])).toEqual([
      ["auth.txt", "deploy-key-1234\nfor staging\n"],
    ]);
    const me = await s.http.system.whoami.query();
    expect(t.events.find((e) => e.type === "input_answered")?.actor).toBe(me.id);
  });

  it("a waiting task can be canceled", async () => {
    const created = await create("a2a.poll", { act: "auth" });
    await waitFor(
      "the agent's auth request",
      () => s.http.tasks.get.query({ id: created.id }),
      (t) => t.attempts[0]?.inputRequest?.kind === "auth-required",
    );
    await s.http.tasks.cancel.mutate({ id: created.id, reason: "no_longer_needed" });
    const t = await settled(created.id);
    expect(t.state).toBe("canceled");
    expect(t.attempts[0]?.state).toBe("canceled");
  });

  it("re-attaches to the same A2A task when the stream breaks off, instead of starting over", async () => {
    const created = await create("a2a_stream", { act: "steps", steps: 30, stepMs: 50 });
    await waitFor(
      "a few steps streamed",
      () => allEvents(s.http, created.id, ["log"]),
      (events) => events.some((e) => String(e.data.line).startsWith("Step 3 ")),
    );
    streaming.dropConnections();
    const t = await settled(created.id);
    expect(t.state).toBe("accepted");
    expect(t.attempts).toHaveLength(1);
    expect(t.attempts[0]?.tries).toBeGreaterThanOrEqual(2);
    const broke = t.events.find((e) => e.type === "attempt_try_failed");
    expect(broke?.data.kind).toBe("network");
    expect(t.events.some((e) => e.type === "log" && String(e.data.line).startsWith("Following the agent's task"))).toBe(
      true,
    );
    // One task at the agent: the second try resubscribed to it.
    expect(streaming.started.filter((k) => k === `${created.id}:1`)).toHaveLength(1);
    expect(t.attempts[0]?.artifacts.map((x) => x.path)).toEqual(["steps.txt"]);
  });
});

describe("an A2A agent that dies mid-stream", { timeout: 120_000 }, () => {
  let s: EngineApp;
  let agent: RunningAgent;

  beforeAll(async () => {
    agent = await startA2AAgent({ streaming: true, skills: ["mortal"] });
    s = await startEngineApp("pglite");
    await s.http.workers.register.mutate({ name: "mortal", protocol: "a2a", url: agent.cardUrl });
  });
  afterAll(async () => {
    await s?.stop();
    await agent?.stop();
  });

  it("fails the attempt after its tries, counted against the worker, with the reason in the task", async () => {
    const created = await s.http.tasks.create.mutate({
      title: "Outlive me",
      mode: "chore",
      capability: "mortal",
      riskTier: 3,
      input: { a2a: { act: "steps", steps: 100, stepMs: 50 } },
    });
    await waitFor(
      "the agent's first steps",
      () => allEvents(s.http, created.id, ["log"]),
      (events) => events.some((e) => String(e.data.line).startsWith("Step 2 ")),
    );
    await agent.stop();
    const t = await waitFor(
      "the task to fail",
      () => withEvents(s.http, { id: created.id }),
      (x) => TERMINAL_STATES.includes(x.state),
      30_000,
    );
    expect(t.state).toBe("failed");
    const tries = t.events.filter((e) => e.type === "attempt_try_failed");
    expect(tries.length).toBe(2);
    // The broken stream, then the refused connection: failures to reach or read the worker, retried.
    expect(tries.map((e) => e.data.kind)).toEqual(expect.arrayContaining(["network"]));
    expect(tries.every((e) => e.data.kind === "network" || e.data.kind === "timeout")).toBe(true);
    expect(t.attempts[0]?.error).toMatch(/Could not reach worker mortal|broke off|stream ended/);
    expect(t.attempts[0]?.error).toContain("Worker told to stop: unconfirmed");
    const w = (await s.http.workers.list.query()).find((x) => x.name === "mortal");
    expect(w?.lastError).toBeTruthy();
  });
});

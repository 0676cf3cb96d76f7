import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { TRPCClientError } from "@trpc/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TERMINAL_STATES } from "../src/shared/task-state.js";
import { DATABASES } from "./helpers/databases.js";
import { type EngineApp, startEngineApp, waitFor } from "./helpers/fault-worker.js";
import { tokenFor } from "./helpers/server.js";
import { type ReferenceWorkerProcess, startReferenceWorkerProcess } from "./helpers/worker.js";

const WORKER_TOKEN = "mcp-reference-worker-token";
const MAX_BODY_BYTES = 64 * 1024;

// biome-ignore lint/suspicious/noExplicitAny: tool answers are JSON read back field by field
type Json = Record<string, any>;

/** The official MCP client over streamable HTTP, with these headers on every request. */
async function connect(url: string, headers: Record<string, string>): Promise<Client> {
  const client = new Client({ name: "agency-mcp-test", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { requestInit: { headers } }));
  return client;
}

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

/** A tool's answer: its structured content, or its error text when it answered isError. */
async function call(client: Client, name: string, args: Json = {}) {
  const r = (await client.callTool({ name, arguments: args })) as CallToolResult;
  const text = r.content.map((c) => (c.type === "text" ? c.text : "")).join("");
  return { isError: r.isError === true, text, data: (r.structuredContent ?? {}) as Json };
}

async function ok(client: Client, name: string, args: Json = {}): Promise<Json> {
  const r = await call(client, name, args);
  expect(r.isError, `${name} answered an error: ${r.text}`).toBe(false);
  // The text block carries the same JSON as the structured content.
  expect(JSON.parse(r.text)).toEqual(r.data);
  return r.data;
}

const initializeBody = JSON.stringify({
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "1" } },
});

/** A raw POST to /mcp, for what the official client does not let a test send. */
function post(url: string, headers: Record<string, string>, body: string = initializeBody) {
  return fetch(`${url}/mcp`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json, text/event-stream", ...headers },
    body,
  });
}

describe.each(DATABASES)("MCP at /mcp on %s", { timeout: 180_000 }, (kind) => {
  let s: EngineApp;
  let worker: ReferenceWorkerProcess;
  let operator: string;
  let viewer: string;
  let client: Client;
  const opened: Client[] = [];
  const taskCount = async () => (await s.http.tasks.count.query({})).count;

  beforeAll(async () => {
    worker = await startReferenceWorkerProcess({ env: { WORKER_TOKEN: WORKER_TOKEN, WORKER_MAX_CONCURRENCY: "4" } });
    s = await startEngineApp(kind, { MAX_AUTO_REDISPATCH: "0", MAX_BODY_BYTES: String(MAX_BODY_BYTES) });
    await s.http.workers.register.mutate({
      name: "reference",
      url: worker.url,
      protocol: "v1",
      capabilities: ["script"],
      maxConcurrency: 4,
      token: WORKER_TOKEN,
    } as never);
    operator = await tokenFor(s.services, "mcp-operator", "operator");
    viewer = await tokenFor(s.services, "mcp-viewer", "viewer");
    client = await connect(s.url, bearer(operator));
    opened.push(client);
  }, 180_000);
  afterAll(async () => {
    for (const c of opened) await c.close().catch(() => {});
    await s?.stop();
    await worker?.stop();
  });

  /** Polls get_task over MCP until the task has come to rest with a verdict or an end. */
  const settled = (c: Client, id: string) =>
    waitFor(
      `task ${id} to settle`,
      () => ok(c, "get_task", { id }),
      (t) => TERMINAL_STATES.includes(t.state) || t.state === "changes_requested",
      90_000,
    );

  it("names the server and lists the task tools, the task and artifact resources and the drafting prompt", async () => {
    expect(client.getServerVersion()).toMatchObject({ name: "agent-agency" });
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(
      [
        "approve_task",
        "cancel_task",
        "create_task",
        "get_task",
        "get_task_logs",
        "list_tasks",
        "list_workers",
        "reject_task",
        "rerun_task",
        "retry_task",
        "verify_provenance",
      ].sort(),
    );
    const create = tools.find((t) => t.name === "create_task");
    // The spec's JSON Schema, from the same zod schema tasks.create parses with.
    expect(create?.inputSchema).toMatchObject({
      type: "object",
      required: ["title"],
      properties: { title: { type: "string", maxLength: 200 }, riskTier: {}, input: {} },
    });
    expect(tools.find((t) => t.name === "get_task")?.annotations).toMatchObject({ readOnlyHint: true });
    expect(tools.find((t) => t.name === "cancel_task")?.annotations).toMatchObject({ destructiveHint: true });
    const list = tools.find((t) => t.name === "list_tasks")?.inputSchema as Json;
    expect(list.properties.filter.properties.createdFrom).toMatchObject({ type: "string", format: "date-time" });

    const { resourceTemplates } = await client.listResourceTemplates();
    expect(resourceTemplates.map((r) => r.uriTemplate).sort()).toEqual([
      "agency://tasks/{id}",
      "agency://tasks/{taskId}/artifacts/{artifactId}",
    ]);
    const { prompts } = await client.listPrompts();
    expect(prompts.map((p) => p.name)).toEqual(["draft_task_spec"]);
  });

  it("creates a task that the reference worker runs, and follows it to its verdict, logs, artifacts and provenance", async () => {
    const created = await ok(client, "create_task", {
      title: "Greet over MCP",
      input: { script: "echo 'mcp says hi'; printf 'hello\\n' > hello.txt" },
      acceptanceCriteria: [{ text: "hello.txt exists", check: { kind: "command", command: "test -f hello.txt" } }],
    });
    expect(created).toMatchObject({ title: "Greet over MCP", state: "queued", createdBy: "mcp-operator" });
    expect(created.uri).toBe(`agency://tasks/${created.id}`);

    const done = await settled(client, created.id);
    expect(done.state).toBe("accepted");
    expect(done.verdict).toMatchObject({ verdict: "accept", attempt: 1 });
    expect(done.verdict.criteria[0]).toMatchObject({ status: "passed" });
    expect(done.verdict.judges.length).toBeGreaterThan(0);
    expect(done.artifacts.map((a: Json) => a.path)).toEqual(["hello.txt"]);
    // The same task through tRPC: MCP returned what tasks.get returns.
    const viaTrpc = await s.http.tasks.get.query({ id: created.id });
    expect(done.attempts[0].id).toBe(viaTrpc.attempts[0]?.id);
    expect(done.verdict.verdict).toBe(viaTrpc.verdict?.verdict);

    const logs = await ok(client, "get_task_logs", { taskId: created.id });
    expect(logs.items.some((e: Json) => e.type === "log" && String(e.data.line).includes("mcp says hi"))).toBe(true);
    expect(logs.items.every((e: Json) => e.type !== "state_changed")).toBe(true);
    const states = await ok(client, "get_task_logs", { taskId: created.id, kinds: ["state_changed"] });
    expect(states.items.map((e: Json) => e.toState)).toEqual(["running", "accepted"]);

    // The task and its artifact as resources.
    const artifact = done.artifacts[0];
    expect(artifact.uri).toBe(`agency://tasks/${created.id}/artifacts/${artifact.id}`);
    const file = await client.readResource({ uri: artifact.uri });
    expect(file.contents[0]).toMatchObject({ uri: artifact.uri, mimeType: "text/plain", text: "hello\n" });
    const resource = await client.readResource({ uri: created.uri });
    expect(JSON.parse(String((resource.contents[0] as { text: string }).text))).toMatchObject({
      id: created.id,
      state: "accepted",
      artifacts: [{ path: "hello.txt", uri: artifact.uri }],
    });
    const { resources } = await client.listResources();
    expect(resources.find((r) => r.uri === created.uri)).toMatchObject({ name: "Greet over MCP" });

    const listed = await ok(client, "list_tasks", { filter: { states: ["accepted"], text: "Greet over MCP" } });
    expect(listed.items.map((t: Json) => t.id)).toEqual([created.id]);
    const workers = await ok(client, "list_workers");
    expect(workers.workers.map((w: Json) => w.name)).toEqual(["reference"]);
    expect(JSON.stringify(workers)).not.toContain(WORKER_TOKEN);
    expect(await ok(client, "verify_provenance")).toMatchObject({ ok: true, firstBad: null });
  });

  it("reports a placeholder's findings, and reruns the task with a corrected script", async () => {
    const created = await ok(client, "create_task", {
      title: "Leave a placeholder",
      input: { script: "printf 'def run():\\n    # TODO: implement\\n    pass\\n' > run.py" },
    });
    const judged = await settled(client, created.id);
    expect(judged.state).toBe("changes_requested");
    const finding = judged.verdict.judges.flatMap((j: Json) => j.findings).find((f: Json) => f.path === "run.py");
    expect(finding).toMatchObject({ path: "run.py", line: 2 });
    expect(finding.snippet).toContain("TODO: implement");

    const rerun = await ok(client, "rerun_task", {
      id: created.id,
      edits: { input: { script: "printf 'def run():\\n    return 1\\n' > run.py" } },
    });
    expect(rerun.rerunOf).toMatchObject({ id: created.id, title: "Leave a placeholder" });
    expect(rerun.spec.title).toBe("Leave a placeholder");
    const fixed = await settled(client, rerun.id);
    expect(fixed.state).toBe("accepted");
    expect((await ok(client, "get_task", { id: created.id })).reruns.map((r: Json) => r.id)).toEqual([rerun.id]);
  });

  it("cancels and retries through the same procedures and transition table", async () => {
    // No worker has this capability, so the task waits in the queue until canceled.
    const created = await ok(client, "create_task", { title: "Waits for nobody", capability: "mcp-nobody" });
    const canceled = await ok(client, "cancel_task", { id: created.id, reason: "not needed" });
    expect(canceled).toMatchObject({ state: "canceled", cancelConfirmed: true, cancelReason: "not needed" });
    const again = await call(client, "cancel_task", { id: created.id, reason: "again" });
    expect(again).toMatchObject({ isError: true });
    expect(again.text).toContain("A task cannot go from canceled to canceling");
    expect((await ok(client, "retry_task", { id: created.id })).state).toBe("queued");
    expect((await ok(client, "cancel_task", { id: created.id, reason: "still not needed" })).state).toBe("canceled");
    const audit = await s.http.audit.list.query({ resourceId: created.id });
    expect(audit.items.map((a) => [a.action, a.actorId])).toEqual(
      expect.arrayContaining([
        ["task.create", "mcp-operator"],
        ["task.cancel", "mcp-operator"],
        ["task.retry", "mcp-operator"],
      ]),
    );
  });

  it("answers bad input with the words tasks.create uses, and creates nothing", async () => {
    const before = await taskCount();
    const bad = { title: "   ", riskTier: 7, input: { script: "x\u0000" } };
    const viaMcp = await call(client, "create_task", bad);
    expect(viaMcp.isError).toBe(true);
    const viaTrpc = await s.http.tasks.create.mutate(bad as never).then(
      () => null,
      (e: unknown) => e as TRPCClientError<never>,
    );
    expect(viaTrpc).toBeInstanceOf(TRPCClientError);
    expect(viaMcp.text).toBe(viaTrpc?.message);
    expect(viaMcp.text).toContain("title: Title is required");
    expect(viaMcp.text).toContain("riskTier: Risk tier must be 1, 2 or 3");
    expect(viaMcp.data.error).toMatchObject({ code: "BAD_REQUEST" });

    const missing = await call(client, "get_task", { id: "00000000-0000-4000-8000-000000000000" });
    expect(missing).toMatchObject({ isError: true });
    expect(missing.text).toBe("Task 00000000-0000-4000-8000-000000000000 does not exist.");
    expect((await call(client, "get_task", { id: "nope" })).text).toBe("id: Task id must be a UUID");

    let deep: Json = { leaf: true };
    for (let i = 0; i < 100; i++) deep = { deep };
    const nested = await call(client, "create_task", { title: "deep", input: deep });
    expect(nested.text).toContain("nested too deeply");
    await expect(client.callTool({ name: "no_such_tool", arguments: {} })).rejects.toThrow(/Unknown tool/);
    expect(await taskCount()).toBe(before);
  });

  it("runs every tool under the caller's role: a viewer reads but cannot create, rerun or cancel", async () => {
    const asViewer = await connect(s.url, bearer(viewer));
    opened.push(asViewer);
    const before = await taskCount();
    const refused = await call(asViewer, "create_task", { title: "Viewer's task", input: { script: "true" } });
    expect(refused.isError).toBe(true);
    expect(refused.text).toBe("This needs the operator role; mcp-viewer (token tests) is viewer.");
    expect(refused.data.error).toMatchObject({ code: "FORBIDDEN" });
    const any = (await ok(asViewer, "list_tasks", { limit: 1 })).items[0];
    expect((await call(asViewer, "rerun_task", { id: any.id })).text).toContain("needs the operator role");
    expect((await call(asViewer, "cancel_task", { id: any.id, reason: "no" })).text).toContain(
      "needs the operator role",
    );
    expect(await taskCount()).toBe(before);
    expect((await ok(asViewer, "get_task", { id: any.id })).id).toBe(any.id);
  });

  it("refuses a missing or invalid token with 401, and a session cookie alone", async () => {
    // A real session of the bootstrap admin: the console's cookie is no credential here, even from our own origin.
    const signIn = await fetch(`${s.url}/trpc/auth.signIn`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: s.url },
      body: JSON.stringify({ json: { username: "admin", password: "execution-tests-password" } }),
    });
    const cookie = (signIn.headers.get("set-cookie") ?? "").split(";")[0] as string;
    expect(cookie).toMatch(/^agency_session=.+/);
    const me = await (await fetch(`${s.url}/trpc/auth.me`, { headers: { cookie, origin: s.url } })).json();
    expect(me.result.data.json).toMatchObject({ via: "session", user: { username: "admin", role: "admin" } });

    const refusals: Record<string, string>[] = [
      {},
      bearer("aat_not-a-real-token"),
      { Authorization: "Basic YWRtaW46cGFzc3dvcmQ=" },
      { Cookie: cookie, Origin: s.url },
    ];
    for (const headers of refusals) {
      const res = await post(s.url, headers);
      expect(res.status, JSON.stringify(headers)).toBe(401);
      expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
      expect((await res.json()).error.message).toContain("Authorization: Bearer <API token>");
    }
    await expect(connect(s.url, {})).rejects.toThrow();
    await expect(connect(s.url, bearer("aat_not-a-real-token"))).rejects.toThrow();
  });

  it("refuses a request from another site's page (Origin) with 403 before anything runs, and admits its own", async () => {
    const before = await taskCount();
    const createCall = JSON.stringify({
      jsonrpc: "2.0",
      id: 2,
      method: "tools/call",
      params: { name: "create_task", arguments: { title: "cross-site", input: { script: "true" } } },
    });
    for (const origin of ["http://evil.example", "http://127.0.0.1:1", "null"]) {
      const res = await post(s.url, { ...bearer(operator), Origin: origin }, createCall);
      expect(res.status, origin).toBe(403);
      expect((await res.json()).error.message).toContain("accepted only from this server's own pages");
    }
    await expect(connect(s.url, { ...bearer(operator), Origin: "http://evil.example" })).rejects.toThrow();
    expect(await taskCount()).toBe(before);

    // The server's own origin is not cross-site.
    const own = await connect(s.url, { ...bearer(operator), Origin: s.url });
    opened.push(own);
    expect((await ok(own, "list_tasks", { limit: 1 })).items).toHaveLength(1);
  });

  it("refuses a body over MAX_BODY_BYTES with 413 and creates nothing; GET and DELETE get 405", async () => {
    const before = await taskCount();
    const big = JSON.stringify({
      jsonrpc: "2.0",
      id: 3,
      method: "tools/call",
      params: { name: "create_task", arguments: { title: "big", description: "x".repeat(MAX_BODY_BYTES) } },
    });
    const res = await post(s.url, bearer(operator), big);
    expect(res.status).toBe(413);
    // Without a Content-Length the body is cut off as it streams in.
    const chunked = await fetch(`${s.url}/mcp`, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json, text/event-stream",
        ...bearer(operator),
      },
      body: new ReadableStream({
        start(controller) {
          controller.enqueue(new TextEncoder().encode(big));
          controller.close();
        },
      }),
      duplex: "half",
    } as RequestInit);
    expect(chunked.status).toBe(413);
    expect(await taskCount()).toBe(before);

    for (const method of ["GET", "DELETE"]) {
      const r = await fetch(`${s.url}/mcp`, { method, headers: { Accept: "text/event-stream", ...bearer(operator) } });
      expect(r.status, method).toBe(405);
      expect(r.headers.get("allow")).toBe("POST");
    }
  });

  it("drafts a task spec from a request, naming the registered capabilities", async () => {
    const prompt = await client.getPrompt({
      name: "draft_task_spec",
      arguments: { request: "make a file that says hello" },
    });
    const content = prompt.messages[0]?.content;
    const text = content?.type === "text" ? content.text : "";
    expect(text).toContain("make a file that says hello");
    expect(text).toContain("Workers are registered for these capabilities: script.");
    expect(text).toContain('"acceptanceCriteria"');
    expect(text).toContain("create_task");
  });
});

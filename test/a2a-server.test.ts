import { randomUUID } from "node:crypto";
import {
  type Message,
  type Part,
  Role,
  type SendMessageRequest,
  type StreamResponse,
  type Task,
  TaskState,
} from "@a2a-js/sdk";
import { type Client, ClientFactory, JsonRpcTransportFactory } from "@a2a-js/sdk/client";
import superjson from "superjson";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DATABASES } from "./helpers/databases.js";
import { waitFor } from "./helpers/fault-worker.js";
import { ServerHome, type ServerRun } from "./helpers/server-process.js";

const LONG = 300_000;

/** A user made by the bootstrap admin, signed in once to set their password, with an API token of their own. */
async function signedUp(
  run: ServerRun,
  username: string,
  role: "viewer" | "operator",
): Promise<{ token: string; cookie: string }> {
  const initial = `initial-${randomUUID()}`;
  await run.api.users.create.mutate({ username, role, password: initial });
  const post = (proc: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${run.url}/trpc/${proc}`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: run.url, ...headers },
      body: JSON.stringify(superjson.serialize(body)),
    });
  const signIn = await post("auth.signIn", { username, password: initial });
  const cookie = (signIn.headers.get("set-cookie") ?? "").split(";")[0] as string;
  const changed = await post(
    "auth.changePassword",
    { currentPassword: initial, newPassword: `chosen-${randomUUID()}` },
    { cookie },
  );
  expect(changed.status).toBe(200);
  const created = await post("tokens.create", { name: "a2a tests" }, { cookie });
  const body = (await created.json()) as { result: { data: { json: { token: string } } } };
  return { token: body.result.data.json.token, cookie };
}

function client(url: string, token: string | null): Promise<Client> {
  const fetchImpl: typeof fetch = (input, init) => {
    const headers = new Headers(init?.headers);
    if (token) headers.set("authorization", `Bearer ${token}`);
    return fetch(input, { ...init, headers });
  };
  return new ClientFactory({ transports: [new JsonRpcTransportFactory({ fetchImpl })] }).createFromUrl(url);
}

const text = (value: string): Part => ({
  content: { $case: "text", value },
  mediaType: "text/plain",
  filename: "",
  metadata: undefined,
});
const data = (value: unknown): Part => ({
  content: { $case: "data", value },
  mediaType: "application/json",
  filename: "",
  metadata: undefined,
});

function message(parts: Part[], ids: { taskId?: string; contextId?: string } = {}): SendMessageRequest {
  const m: Message = {
    messageId: randomUUID(),
    contextId: ids.contextId ?? "",
    taskId: ids.taskId ?? "",
    role: Role.ROLE_USER,
    parts,
    metadata: undefined,
    extensions: [],
    referenceTaskIds: [],
  };
  return { tenant: "", message: m, configuration: undefined, metadata: undefined };
}

function nonBlocking(req: SendMessageRequest): SendMessageRequest {
  return {
    ...req,
    configuration: {
      acceptedOutputModes: [],
      taskPushNotificationConfig: undefined,
      returnImmediately: true,
    },
  };
}

const asTask = (r: unknown): Task => {
  expect(r).toHaveProperty("status");
  return r as Task;
};

const partText = (p: Part | undefined) => (p?.content?.$case === "text" ? p.content.value : undefined);

describe.each(DATABASES)("the agency as an A2A server on %s", (kind) => {
  let home: ServerHome;
  let run: ServerRun;
  let operator: string;
  let viewer: string;
  let operatorCookie: string;
  let a2a: Client;

  beforeAll(async () => {
    home = new ServerHome(kind, { START_REFERENCE_WORKER: "1", MAX_AUTO_REDISPATCH: "0" });
    run = await home.start();
    const op = await signedUp(run, "a2a-operator", "operator");
    operator = op.token;
    operatorCookie = op.cookie;
    viewer = (await signedUp(run, "a2a-viewer", "viewer")).token;
    a2a = await client(run.url, operator);
    // The reference worker registers itself at start; wait until it is healthy so tasks are dispatched.
    await waitFor(
      "the reference worker to be healthy",
      () => run.api.workers.list.query(),
      (ws) => ws.some((w) => w.name === "reference" && w.health === "ok"),
      LONG,
    );
  }, LONG);

  afterAll(async () => {
    await home?.dispose();
  }, LONG);

  it("serves its Agent Card: the JSON-RPC endpoint, streaming, bearer tokens and a skill per worker capability", async () => {
    const res = await fetch(`${run.url}/.well-known/agent-card.json`);
    expect(res.status).toBe(200);
    const card = (await res.json()) as Record<string, unknown>;
    expect(card).toMatchObject({
      name: "Agent Agency",
      capabilities: { streaming: true },
      securitySchemes: { agencyApiToken: { httpAuthSecurityScheme: { scheme: "Bearer" } } },
      securityRequirements: [{ schemes: { agencyApiToken: {} } }],
    });
    expect(card.supportedInterfaces).toEqual([
      { url: `${run.url}/a2a`, protocolBinding: "JSONRPC", protocolVersion: "1.0" },
      { url: `${run.url}/a2a`, protocolBinding: "JSONRPC", protocolVersion: "0.3" },
    ]);
    expect((card.skills as { id: string }[]).map((s) => s.id)).toContain("script");
    // The SDK's own client reads it the same way.
    const parsed = await a2a.getAgentCard();
    expect(parsed.capabilities?.streaming).toBe(true);
    expect(parsed.skills.map((s) => s.id)).toContain("script");
  });

  it("refuses a call without a token with 401, and one with an unknown token", async () => {
    const call = (headers: Record<string, string>) =>
      fetch(`${run.url}/a2a`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "GetTask", params: { id: randomUUID() } }),
      });
    const anonymous = await call({});
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect(await anonymous.json()).toMatchObject({ jsonrpc: "2.0", error: { code: -32040 } });
    expect((await call({ authorization: "Bearer aat_not-a-token" })).status).toBe(401);
    const anonymousClient = await client(run.url, null);
    await expect(anonymousClient.getTask({ tenant: "", id: randomUUID() })).rejects.toThrow(/API token/);
  });

  it(
    "message/send creates an agency task as the caller, visible in tasks.list, and answers with its result",
    async () => {
      const result = asTask(
        await a2a.sendMessage(
          message([
            text("Write a greeting\nPut hello in hello.txt."),
            data({ input: { script: "echo hello > hello.txt" } }),
          ]),
        ),
      );
      expect(result.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
      expect(result.contextId).toBe(result.id);
      expect(result.artifacts.map((a) => a.name)).toEqual(["hello.txt"]);
      expect(partText(result.artifacts[0]?.parts[0])).toBe("hello\n");
      const listed = await run.api.tasks.list.query({ filter: { sort: "created_desc" }, limit: 50 });
      const row = listed.items.find((t) => t.id === result.id);
      expect(row).toMatchObject({ title: "Write a greeting", state: "accepted", createdBy: "a2a-operator" });
      const detail = await run.api.tasks.get.query({ id: result.id });
      expect(detail.description).toBe("Write a greeting\nPut hello in hello.txt.");
      expect(detail.spec.input).toEqual({ script: "echo hello > hello.txt" });
    },
    LONG,
  );

  it(
    "message/stream follows the task to a terminal state: status updates, then the artifacts, then completed",
    async () => {
      const events: StreamResponse[] = [];
      for await (const e of a2a.sendMessageStream(
        message([text("Streamed task"), data({ input: { script: "sleep 1; printf 'a\\nb\\n' > out.txt" } })]),
      )) {
        events.push(e);
      }
      const kinds = events.map((e) => e.payload?.$case);
      expect(kinds[0]).toBe("task");
      const first = events[0]?.payload?.$case === "task" ? events[0].payload.value : undefined;
      // The dispatcher may have claimed the task before the first snapshot was read.
      expect([TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING]).toContain(first?.status?.state);
      const states = events.flatMap((e) =>
        e.payload?.$case === "statusUpdate" ? [e.payload.value.status?.state] : [],
      );
      expect(states.at(-1)).toBe(TaskState.TASK_STATE_COMPLETED);
      // The script sleeps a second: the task is seen working before it completes, in order.
      expect([first?.status?.state, ...states]).toContain(TaskState.TASK_STATE_WORKING);
      const order = [TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING, TaskState.TASK_STATE_COMPLETED];
      const seen = [first?.status?.state, ...states].map((st) => order.indexOf(st as TaskState));
      expect(seen).toEqual([...seen].sort((a, b) => a - b));
      const artifactAt = kinds.indexOf("artifactUpdate");
      expect(artifactAt).toBeGreaterThan(0);
      expect(artifactAt).toBeLessThan(kinds.lastIndexOf("statusUpdate"));
      const artifact = events[artifactAt]?.payload;
      expect(artifact?.$case === "artifactUpdate" ? artifact.value.artifact?.name : null).toBe("out.txt");
    },
    LONG,
  );

  it(
    "tasks/cancel cancels a running task as tasks.cancel does, and refuses to cancel a finished one",
    async () => {
      const started = asTask(
        await a2a.sendMessage(nonBlocking(message([text("Long task"), data({ input: { script: "sleep 60" } })]))),
      );
      await waitFor(
        "the task to run",
        () => a2a.getTask({ tenant: "", id: started.id }),
        (t) => t.status?.state === TaskState.TASK_STATE_WORKING,
        LONG,
      );
      const canceled = await a2a.cancelTask({
        tenant: "",
        id: started.id,
        metadata: { reason: "not needed any more" },
      });
      expect([TaskState.TASK_STATE_CANCELED, TaskState.TASK_STATE_WORKING]).toContain(canceled.status?.state);
      const ended = await waitFor(
        "the task to end canceled",
        () => a2a.getTask({ tenant: "", id: started.id }),
        (t) => t.status?.state === TaskState.TASK_STATE_CANCELED,
        LONG,
      );
      expect(partText(ended.status?.message?.parts[0])).toContain("not needed any more");
      const detail = await run.api.tasks.get.query({ id: started.id });
      expect(detail).toMatchObject({
        state: "canceled",
        cancelRequestedBy: "a2a-operator",
        cancelReason: "not needed any more",
      });
      await expect(a2a.cancelTask({ tenant: "", id: started.id, metadata: undefined })).resolves.toMatchObject({
        status: { state: TaskState.TASK_STATE_CANCELED },
      });
      const done = asTask(
        await a2a.sendMessage(message([text("Quick"), data({ input: { script: "echo done > done.txt" } })])),
      );
      await expect(a2a.cancelTask({ tenant: "", id: done.id, metadata: undefined })).rejects.toThrow(
        /cannot be canceled/,
      );
    },
    LONG,
  );

  it(
    "a viewer's token may read tasks but not send or cancel: refused, and nothing is created",
    async () => {
      const operators = asTask(
        await a2a.sendMessage(
          nonBlocking(message([text("An operator's task"), data({ input: { script: "sleep 30" } })])),
        ),
      );
      const before = await run.api.tasks.count.query({});
      const asViewer = await client(run.url, viewer);
      await expect(asViewer.sendMessage(message([text("Viewer's task")]))).rejects.toThrow(
        /Only an operator or above may send a message \(it creates a task\); a2a-viewer is a viewer/,
      );
      await expect(asViewer.getTask({ tenant: "", id: operators.id })).resolves.toMatchObject({ id: operators.id });
      await expect(asViewer.cancelTask({ tenant: "", id: operators.id, metadata: undefined })).rejects.toThrow(
        /Only an operator or above may cancel/,
      );
      expect(await run.api.tasks.count.query({})).toEqual(before);
      expect((await run.api.tasks.get.query({ id: operators.id })).state).not.toMatch(/cancel/);
      await a2a.cancelTask({ tenant: "", id: operators.id, metadata: undefined });
    },
    LONG,
  );

  it(
    "bad input gets a clear error and creates nothing; a message to a finished task is refused",
    async () => {
      const before = await run.api.tasks.count.query({});
      await expect(a2a.sendMessage(message([text("x"), data({ priority: "urgent" })]))).rejects.toThrow(
        /priority: Priority must be low, medium, high or critical/,
      );
      await expect(a2a.sendMessage(message([text("x"), data({ colour: "red" })]))).rejects.toThrow(
        /Unknown task spec field "colour"/,
      );
      await expect(a2a.sendMessage(message([data({ input: {} })]))).rejects.toThrow(
        /no text and its data part no title/,
      );
      expect(await run.api.tasks.count.query({})).toEqual(before);
      const done = asTask(
        await a2a.sendMessage(message([text("Finished"), data({ input: { script: "echo done > done.txt" } })])),
      );
      await expect(a2a.sendMessage(message([text("more")], { taskId: done.id }))).rejects.toThrow(
        /is completed \(agency state accepted\).*Send a message without taskId/,
      );
    },
    LONG,
  );

  it(
    "takes the v0.3 JSON-RPC methods too (message/send without A2A-Version)",
    async () => {
      const res = await fetch(`${run.url}/a2a`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${operator}` },
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: "legacy-1",
          method: "message/send",
          params: {
            message: {
              kind: "message",
              role: "user",
              messageId: randomUUID(),
              parts: [
                { kind: "text", text: "Legacy client's task" },
                { kind: "data", data: { input: { script: "echo legacy > legacy.txt" } } },
              ],
            },
          },
        }),
      });
      expect(res.status).toBe(200);
      const body = (await res.json()) as {
        id: string;
        result: { kind: string; id: string; status: { state: string } };
      };
      expect(body).toMatchObject({ id: "legacy-1", result: { kind: "task", status: { state: "completed" } } });
      expect((await run.api.tasks.get.query({ id: body.result.id })).title).toBe("Legacy client's task");
    },
    LONG,
  );

  it(
    "keeps the context a client names: its tasks carry it, and ListTasks finds them by it",
    async () => {
      const contextId = `conversation-${randomUUID()}`;
      const send = async (title: string, script: string) =>
        asTask(await a2a.sendMessage(message([text(title), data({ input: { script } })], { contextId })));
      const first = await send("First in context", "echo 1 > one.txt");
      const second = await send("Second in context", "echo 2 > two.txt");
      expect([first.contextId, second.contextId]).toEqual([contextId, contextId]);
      expect((await a2a.getTask({ tenant: "", id: first.id })).contextId).toBe(contextId);
      const list = (status: TaskState, pageSize: number, includeArtifacts: boolean) =>
        a2a.listTasks({
          tenant: "",
          contextId,
          status,
          pageSize,
          pageToken: "",
          statusTimestampAfter: undefined,
          includeArtifacts,
        });
      const listed = await list(TaskState.TASK_STATE_UNSPECIFIED, 10, true);
      expect(listed.tasks.map((t) => t.id)).toEqual([second.id, first.id]);
      expect(listed.totalSize).toBe(2);
      expect(listed.tasks[1]?.artifacts.map((a) => a.name)).toEqual(["one.txt"]);
      const paged = await list(TaskState.TASK_STATE_COMPLETED, 1, false);
      expect(paged.tasks.map((t) => [t.id, t.artifacts.length])).toEqual([[second.id, 0]]);
      expect(paged.nextPageToken).not.toBe("");
    },
    LONG,
  );

  it(
    "SubscribeToTask follows a task another request started, to its end",
    async () => {
      const started = asTask(
        await a2a.sendMessage(
          nonBlocking(message([text("Followed"), data({ input: { script: "sleep 2; echo seen > seen.txt" } })])),
        ),
      );
      const events: StreamResponse[] = [];
      const asViewer = await client(run.url, viewer);
      for await (const e of asViewer.resubscribeTask({ tenant: "", id: started.id })) events.push(e);
      expect(events[0]?.payload?.$case).toBe("task");
      const last = events.at(-1)?.payload;
      expect(last?.$case === "statusUpdate" ? last.value.status?.state : null).toBe(TaskState.TASK_STATE_COMPLETED);
      const names = events.map((e) => (e.payload?.$case === "artifactUpdate" ? e.payload.value.artifact?.name : null));
      expect(names).toContain("seen.txt");
    },
    LONG,
  );

  it(
    "changes requested by the council read as input-required; a message to the task asks for another attempt",
    async () => {
      const script = "echo 'TODO: finish' > todo.txt";
      const first = asTask(await a2a.sendMessage(message([text("Leaves a placeholder"), data({ input: { script } })])));
      expect(first.status?.state).toBe(TaskState.TASK_STATE_INPUT_REQUIRED);
      expect(partText(first.status?.message?.parts[0])).toMatch(/requested changes/);
      const followUp = message([text("Try again")], { taskId: first.id, contextId: first.contextId });
      const again = asTask(await a2a.sendMessage(followUp));
      expect(again.id).toBe(first.id);
      expect(again.status?.state).toBe(TaskState.TASK_STATE_INPUT_REQUIRED);
      const detail = await run.api.tasks.get.query({ id: first.id });
      expect(detail.attempts.map((a) => a.verdict)).toEqual(["changes_requested", "changes_requested"]);
    },
    LONG,
  );

  it("applies the console's Origin policy to session cookies, and the body limit", async () => {
    const call = (headers: Record<string, string>, body: string) =>
      fetch(`${run.url}/a2a`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
    const getTask = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "GetTask", params: { id: randomUUID() } });
    const foreign = await call({ cookie: operatorCookie, origin: "https://evil.example" }, getTask);
    expect(foreign.status).toBe(403);
    expect(await foreign.text()).toMatch(/only from this server's own pages/);
    const own = await call({ cookie: operatorCookie, origin: run.url, "a2a-version": "1.0" }, getTask);
    expect(own.status).toBe(200);
    expect(await own.json()).toMatchObject({ error: { code: -32001 } });
    const huge = await call({ authorization: `Bearer ${operator}` }, "x".repeat(1024 * 1024 + 1));
    expect(huge.status).toBe(413);
  });

  it(
    "tasks/get answers from the database after the server restarts",
    async () => {
      const done = asTask(
        await a2a.sendMessage(
          message([text("Survives a restart"), data({ input: { script: "echo kept > kept.txt" } })], {
            contextId: "kept-context",
          }),
        ),
      );
      expect(done.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
      await home.stop();
      run = await home.start();
      a2a = await client(run.url, operator);
      const again = await a2a.getTask({ tenant: "", id: done.id });
      expect(again.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
      expect(again.contextId).toBe("kept-context");
      expect(again.artifacts.map((a) => [a.name, partText(a.parts[0])])).toEqual([["kept.txt", "kept\n"]]);
      await expect(a2a.getTask({ tenant: "", id: randomUUID() })).rejects.toThrow(/does not exist|not found/i);
    },
    LONG,
  );
});

import { randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { createTRPCClient, createWSClient, TRPCClientError, wsLink } from "@trpc/client";
import pino from "pino";
import superjson from "superjson";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { type App, createApp } from "../src/server/app.js";
import type { AppRouter } from "../src/server/router.js";
import { createServices } from "../src/server/services.js";
import { LIMITS } from "../src/shared/task-spec.js";
import { TERMINAL_STATES } from "../src/shared/task-state.js";
import type { ExecuteResult } from "../src/shared/worker-protocol.js";
import { DATABASES, freshDatabase, type TestDatabase } from "./helpers/databases.js";
import {
  type EngineApp,
  type FaultWorker,
  type FaultWorkerOptions,
  okResult,
  startEngineApp,
  startFaultWorker,
  waitFor,
} from "./helpers/fault-worker.js";
import { tokenFor } from "./helpers/server.js";
import { testConfig } from "./helpers/services.js";
import { withEvents } from "./helpers/task-events.js";

/** What no answer to a client may contain: ORM and database wording, server paths, source positions. */
const LEAKS = [
  /prisma/i,
  /invocation/i,
  /\/work\//,
  /\.ts:\d/,
  /node_modules/,
  /relation "/i,
  /does not exist/i,
  /syntax error/i,
  /invalid byte sequence/i,
  /unsupported Unicode escape/i,
  /PGlite/i,
  /pool/i,
  /Maximum call stack/i,
  /at async/,
];

interface Answer {
  status: number;
  text: string;
  /** The tRPC error (superjson's `json`), when the answer is one. */
  error: { message: string; data: { code: string; httpStatus: number; errorId?: string } } | null;
}

interface LoggedApp {
  url: string;
  db: TestDatabase;
  app: App;
  /** Every log line the server wrote. */
  logs: string[];
  token: string;
  call(
    procedure: string,
    input: unknown,
    opts?: { method?: "GET" | "POST"; raw?: string; token?: string | null },
  ): Promise<Answer>;
  /** Rows in every table a refused input could have changed. */
  counts(): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

const TABLES = [
  "tasks",
  "task_events",
  "attempts",
  "saved_views",
  "chat_sessions",
  "chat_messages",
  "workers",
  "users",
  "api_tokens",
  "audit_entries",
  "provenance_records",
];

/** The real server over HTTP with a logger whose lines the test reads; the client acts as an admin by API token. */
async function startLoggedApp(kind: "pglite" | "postgres"): Promise<LoggedApp> {
  const db = await freshDatabase(kind);
  const logs: string[] = [];
  const log = pino({ level: "info" }, { write: (line: string) => void logs.push(line) });
  const config = testConfig({ PORT: "0", HOST: "127.0.0.1", WEB_DIST_DIR: "/nonexistent", EXECUTION_ENABLED: "0" });
  const services = await createServices(db, log, config);
  const token = await tokenFor(services, "bounds-admin", "admin");
  const app = createApp({ config, log, services });
  await new Promise<void>((resolve) => app.server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  return {
    url,
    db,
    app,
    logs,
    token,
    async call(procedure, input, opts = {}) {
      const method = opts.method ?? "POST";
      const body = opts.raw ?? JSON.stringify({ json: input });
      const auth: Record<string, string> =
        opts.token === null ? {} : { authorization: `Bearer ${opts.token ?? token}` };
      const res =
        method === "GET"
          ? await fetch(`${url}/trpc/${procedure}?input=${encodeURIComponent(body)}`, { headers: auth })
          : await fetch(`${url}/trpc/${procedure}`, {
              method: "POST",
              headers: { ...auth, "content-type": "application/json" },
              body,
            });
      const text = await res.text();
      let error: Answer["error"] = null;
      try {
        error = (JSON.parse(text) as { error?: { json: Answer["error"] } }).error?.json ?? null;
      } catch {
        error = null;
      }
      return { status: res.status, text, error };
    },
    async counts() {
      const out: Record<string, number> = {};
      for (const t of TABLES)
        out[t] = (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${t}`))[0]?.n ?? -1;
      return out;
    },
    async stop() {
      await app.close();
      services.hub.stop();
      await db.dispose().catch(() => {});
    },
  };
}

/** JSON text of an object nested `levels` deep, written out directly (JSON.stringify itself would overflow). */
const deepJson = (levels: number) => `${'{"a":'.repeat(levels)}1${"}".repeat(levels)}`;

function expectNoLeak(text: string) {
  for (const leak of LEAKS) expect(text, `answer leaks ${leak}: ${text.slice(0, 500)}`).not.toMatch(leak);
}

describe.each(DATABASES)("input bounds on %s", (kind) => {
  let s: LoggedApp;
  beforeAll(async () => {
    s = await startLoggedApp(kind);
  });
  afterAll(async () => {
    await s?.stop();
  });

  const taskCount = async () => {
    const a = await s.call("tasks.count", { filter: {} }, { method: "GET" });
    return (JSON.parse(a.text) as { result: { data: { json: { count: number } } } }).result.data.json.count;
  };

  it("refuses NUL and lone surrogates in title, description and input with a 400 naming the field; nothing is created", async () => {
    const ok = await s.call("tasks.create", { title: "a fine task", input: { script: "true" } });
    expect(ok.status).toBe(200);
    const before = await s.counts();
    const listed = await taskCount();
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ title: "a\u0000b" }, "title", /NUL character \(U\+0000\) at index 1/],
      [{ title: "t", description: "line one\n\u0000" }, "description", /NUL character/],
      [{ title: "t", input: { script: "echo \u0000" } }, "input.script", /NUL character/],
      [{ title: "t", input: { files: { "a.txt": ["x", { y: "\u0000" }] } } }, "input.files.a.txt.1.y", /NUL character/],
      [{ title: "t\uD800" }, "title", /lone surrogate \(U\+D800\) at index 1/],
      [{ title: "t", description: "\uDC00tail" }, "description", /lone surrogate \(U\+DC00\)/],
      [{ title: "t", input: { script: "echo \uDBFF" } }, "input.script", /lone surrogate/],
    ];
    for (const [spec, field, why] of cases) {
      const a = await s.call("tasks.create", spec);
      expect(a.status, a.text).toBe(400);
      expect(a.error?.message).toMatch(new RegExp(`^${field.replaceAll(".", "\\.")}: `));
      expect(a.error?.message).toMatch(why);
      expectNoLeak(a.text);
    }
    expect(await taskCount()).toBe(listed);
    expect(await s.counts()).toEqual(before);
  });

  it("refuses input nested 10,000 levels deep with the depth message, and free input deeper than 32 levels", async () => {
    const before = await s.counts();
    const deep = await s.call("tasks.create", null, { raw: `{"json":{"title":"deep","input":${deepJson(10_000)}}}` });
    expect(deep.status).toBe(400);
    expect(deep.error?.message).toBe("The request is nested too deeply: objects and arrays at most 64 levels deep.");
    expectNoLeak(deep.text);
    // Deep in superjson's own metadata too: it is walked before superjson sees it.
    const meta = await s.call("tasks.create", null, {
      raw: `{"json":{"title":"deep meta"},"meta":{"values":${deepJson(10_000)}}}`,
    });
    expect(meta.status).toBe(400);
    expect(meta.error?.message).toContain("nested too deeply");
    const forty = await s.call("tasks.create", null, { raw: `{"json":{"title":"forty","input":${deepJson(40)}}}` });
    expect(forty.status).toBe(400);
    expect(forty.error?.message).toBe(
      `input: Input is nested more than ${LIMITS.inputDepth} levels deep (objects and arrays)`,
    );
    // At the limit it is taken.
    const atLimit = await s.call("tasks.create", null, {
      raw: `{"json":{"title":"at the limit","input":${deepJson(LIMITS.inputDepth)}}}`,
    });
    expect(atLimit.status, atLimit.text).toBe(200);
    const after = await s.counts();
    expect(after.tasks).toBe((before.tasks ?? 0) + 1);
  });

  it("answers an internal database error with an id and our words; the detail goes to the log under that id", async () => {
    // A real database failure: the table the procedures read and write is not there.
    await s.db.exec(`ALTER TABLE tasks RENAME TO tasks_moved_away`);
    try {
      for (const [procedure, input, method] of [
        ["tasks.list", {}, "GET"],
        ["tasks.create", { title: "into a missing table" }, "POST"],
      ] as const) {
        const a = await s.call(procedure, input, { method });
        expect(a.status, a.text).toBe(500);
        expect(a.error?.data.code).toBe("INTERNAL_SERVER_ERROR");
        const id = a.error?.data.errorId ?? "";
        expect(id).toMatch(/^[0-9a-f]{12}$/);
        expect(a.error?.message).toBe(
          `Internal error ${id}: the server could not complete this request. Its log has the detail under this id.`,
        );
        expectNoLeak(a.text);
        expect(a.text).not.toContain("tasks_moved_away");
        const logged = s.logs.filter((l) => l.includes(id));
        expect(logged).toHaveLength(1);
        expect(logged[0]).toMatch(/tasks|relation|does not exist/);
        expect(logged[0]).toContain(procedure);
      }
      // Over the WebSocket too: the same formatter, and the detail logged under the id given.
      const wsClient = createWSClient({
        url: `${s.url.replace("http", "ws")}/trpc`,
        WebSocket: WebSocket as never,
        connectionParams: { token: s.token },
      });
      try {
        const client = createTRPCClient<AppRouter>({ links: [wsLink({ client: wsClient, transformer: superjson })] });
        const err = (await client.tasks.list.query({}).catch((e: unknown) => e)) as TRPCClientError<AppRouter>;
        expect(err).toBeInstanceOf(TRPCClientError);
        const id = (err.data as { errorId?: string } | undefined)?.errorId ?? "";
        expect(err.message).toBe(
          `Internal error ${id}: the server could not complete this request. Its log has the detail under this id.`,
        );
        expectNoLeak(JSON.stringify({ message: err.message, data: err.data }));
        expect(s.logs.filter((l) => l.includes(id))).toHaveLength(1);
      } finally {
        wsClient.close();
      }
    } finally {
      await s.db.exec(`ALTER TABLE tasks_moved_away RENAME TO tasks`);
    }
    expect((await s.call("tasks.list", {}, { method: "GET" })).status).toBe(200);
  });

  it("refuses a corpus of ~200 bad inputs across the API with 400, naming the field, and changes nothing", async () => {
    const bad = [
      "\u0000",
      "a\u0000",
      "\u0000b",
      `${"x".repeat(40)}\u0000`,
      "\uD800",
      "\uDBFF",
      "\uDC00",
      "\uDFFF",
      "a\uD800b",
      "\uDC00\uD800",
      "ok \uD83D\uDE00 then \uDE00",
    ];
    const uuid = randomUUID();
    type Target = [procedure: string, field: string, input: (v: string) => unknown, method?: "GET" | "POST"];
    const targets: Target[] = [
      ["tasks.create", "title", (v) => ({ title: `t${v}` })],
      ["tasks.create", "description", (v) => ({ title: "t", description: v })],
      ["tasks.create", "capability", (v) => ({ title: "t", capability: `cap${v}` })],
      ["tasks.create", "acceptanceCriteria.0.text", (v) => ({ title: "t", acceptanceCriteria: [{ text: `c${v}` }] })],
      [
        "tasks.create",
        "acceptanceCriteria.0.check.command",
        (v) => ({ title: "t", acceptanceCriteria: [{ text: "c", check: { kind: "command", command: `ls ${v}` } }] }),
      ],
      ["tasks.create", "scope.include.0", (v) => ({ title: "t", scope: { include: [`src/${v}`] } })],
      ["tasks.create", "input.script", (v) => ({ title: "t", input: { script: v } })],
      ["tasks.create", "input.a.0.b", (v) => ({ title: "t", input: { a: [{ b: v }] } })],
      ["tasks.create", "input", (v) => ({ title: "t", input: { [`key${v}`]: 1 } })],
      ["tasks.list", "filter.text", (v) => ({ filter: { text: v } }), "GET"],
      ["tasks.cancel", "reason", (v) => ({ id: uuid, reason: `stop ${v}` })],
      ["views.save", "name", (v) => ({ name: `view ${v}`, filter: {} })],
      ["chat.sessions.create", "title", (v) => ({ title: `s${v}` })],
      [
        "users.create",
        "displayName",
        (v) => ({ username: "newbie", role: "viewer", password: "a-long-password-1", displayName: v }),
      ],
      ["workers.register", "url", (v) => ({ name: "w", url: `http://127.0.0.1:1/${v}`, capabilities: ["x"] })],
      ["audit.list", "actorId", (v) => ({ actorId: v }), "GET"],
      ["auth.signIn", "username", (v) => ({ username: `admin${v}`, password: "whatever" })],
    ];
    const before = await s.counts();
    const failures: string[] = [];
    let tried = 0;
    for (const [procedure, field, input, method] of targets) {
      for (const v of bad) {
        tried++;
        const a = await s.call(procedure, input(v), { method: method ?? "POST" });
        const named = a.error?.message.startsWith(`${field}`) && a.error.message.includes(": ");
        if (a.status !== 400 || !named || LEAKS.some((l) => l.test(a.text))) {
          failures.push(`${procedure} ${field} ${JSON.stringify(v)} → ${a.status} ${a.text.slice(0, 300)}`);
        }
      }
    }
    // Depth, at the request and in free input, at and around both bounds.
    for (const levels of [33, 40, 63, 64, 65, 100, 1_000, 5_000, 10_000, 50_000]) {
      tried++;
      const a = await s.call("tasks.create", null, { raw: `{"json":{"title":"deep","input":${deepJson(levels)}}}` });
      if (a.status !== 400 || !/nested (too deeply|more than 32 levels)/.test(a.error?.message ?? "")) {
        failures.push(`depth ${levels} → ${a.status} ${a.text.slice(0, 300)}`);
      }
    }
    expect(failures).toEqual([]);
    expect(tried).toBeGreaterThanOrEqual(190);
    expect(await s.counts()).toEqual(before);
  });
});

describe("input bounds: a database made unavailable", () => {
  it("answers tRPC and /readyz without the database's words once the database is closed", async () => {
    const s = await startLoggedApp("pglite");
    try {
      await s.db.close();
      const a = await s.call("tasks.list", {}, { method: "GET" });
      expect(a.status).toBe(500);
      expect(a.error?.message).toMatch(/^Internal error [0-9a-f]{12}: /);
      expectNoLeak(a.text);
      const ready = await fetch(`${s.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toEqual({ status: "unready", reason: "database unreachable" });
      // The detail is in the log.
      expect(s.logs.some((l) => l.includes("readiness: the database did not answer"))).toBe(true);
    } finally {
      await s.app.close();
    }
  });
});

describe.each(DATABASES)("worker results that are not valid text, on %s", (kind) => {
  let s: EngineApp;
  const fakes: FaultWorker[] = [];
  let n = 0;
  beforeAll(async () => {
    // Tier 3: one attempt, two tries, and a try timeout long enough for a loaded machine: the one try
    // counted is the protocol error's, not a timeout's.
    s = await startEngineApp(kind, { RETRY_POLICY: JSON.stringify({ 3: { tryTimeoutMs: 15_000 } }) });
  });
  afterAll(async () => {
    await s?.stop();
    await Promise.all(fakes.map((f) => f.close()));
  });

  async function worker(capability: string, opts: FaultWorkerOptions) {
    const f = await startFaultWorker(opts);
    fakes.push(f);
    await s.http.workers.register.mutate({ name: `text${++n}`, url: f.url, capabilities: [capability] });
    return `text${n}`;
  }
  const run = async (capability: string) => {
    const created = await s.http.tasks.create.mutate({
      title: capability,
      capability,
      riskTier: 3,
      input: { script: "true" },
    });
    return waitFor(
      `task ${created.id} to settle`,
      () => withEvents(s.http, { id: created.id }),
      (t) => TERMINAL_STATES.includes(t.state),
    );
  };

  const withArtifacts = (req: Parameters<typeof okResult>[0], extra: Partial<ExecuteResult>): ExecuteResult => ({
    ...okResult(req),
    ...extra,
  });
  const cases: [string, (req: Parameters<typeof okResult>[0]) => ExecuteResult, string][] = [
    ["summary", (req) => withArtifacts(req, { summary: "done\u0000" }), "a NUL character in summary"],
    [
      "artifact content",
      (req) =>
        withArtifacts(req, {
          artifacts: [0, 1, 2, 3].map((i) => ({
            path: `f${i}.txt`,
            operation: "create" as const,
            content: i === 3 ? "bin\u0000ary" : "text",
          })),
        }),
      "a NUL character in artifacts[3].content",
    ],
    [
      "artifact path",
      (req) => withArtifacts(req, { artifacts: [{ path: "name\uD800.txt", operation: "create" }] }),
      "a lone surrogate in artifacts[0].path",
    ],
    ["logs", (req) => withArtifacts(req, { logs: ["fine", "\u0000"] }), "a NUL character in logs[1]"],
    [
      "error of a failed result",
      () => ({ status: "failed", summary: "could not", artifacts: [], error: { message: "crashed \u0000" } }),
      "a NUL character in error.message",
    ],
  ];

  for (const stream of [false, true]) {
    for (const [what, result, where] of cases) {
      it(`fails the attempt with our message for a NUL or lone surrogate in ${what} (${stream ? "NDJSON" : "JSON"})`, async () => {
        const cap = `text-${what.replaceAll(" ", "-")}-${stream ? "s" : "j"}`;
        const name = await worker(cap, { result, stream });
        const t = await run(cap);
        expect(t.state).toBe("failed");
        expect(t.attempts[0]?.tries).toBe(1);
        expect(t.attempts[0]?.error).toMatch(
          new RegExp(
            `^Worker ${name}'s result contains ${where.replace(/[[\]().]/g, "\\$&")}: results must be valid text`,
          ),
        );
        expectNoLeak(`${t.attempts[0]?.error} ${t.stateReason}`);
        const stored = await s.db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM artifacts WHERE attempt_id IN (SELECT id FROM attempts WHERE task_id = $1::uuid)`,
          [t.id],
        );
        expect(stored[0]?.n).toBe(0);
      });
    }
  }

  it("stores our words, not the database's, as the error of an attempt whose result the database refused", async () => {
    // A real refusal by the database: a constraint the result's artifact breaks.
    await s.db.exec(`ALTER TABLE artifacts ADD CONSTRAINT bounds_test_refuses_boom CHECK (path <> 'boom.txt')`);
    try {
      await worker("text-refused", {
        result: (req) => ({ ...okResult(req), artifacts: [{ path: "boom.txt", operation: "create", content: "x" }] }),
      });
      const t = await run("text-refused");
      expect(t.state).toBe("failed");
      expect(t.attempts[0]?.error).toMatch(
        /^The agency could not store this attempt's result \(internal error [0-9a-f]{12}; the server's log has the detail\)\.$/,
      );
      expectNoLeak(`${t.attempts[0]?.error} ${t.stateReason} ${JSON.stringify(t.events.map((e) => e.data))}`);
      expect(JSON.stringify(t)).not.toContain("bounds_test_refuses_boom");
    } finally {
      await s.db.exec(`ALTER TABLE artifacts DROP CONSTRAINT bounds_test_refuses_boom`);
    }
  });

  /** A worker of a few lines, registered under `capability`, answering /execute with `answer`. */
  async function rawWorker(capability: string, answer: (res: http.ServerResponse, request: unknown) => void) {
    const server = http.createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      if (req.url === "/health") {
        res.writeHead(200, { "content-type": "application/json" });
        return void res.end(JSON.stringify({ status: "ok", protocol: 1, capabilities: [capability], inFlight: 0 }));
      }
      answer(res, JSON.parse(Buffer.concat(chunks).toString("utf8")));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await s.http.workers.register.mutate({ name: capability, url, capabilities: [capability] });
    return {
      close: () => {
        server.closeAllConnections();
        return new Promise<void>((resolve) => server.close(() => resolve()));
      },
    };
  }

  it("quotes a malformed answer holding a NUL byte with U+FFFD in the attempt's error and its try event", async () => {
    const w = await rawWorker("raw-nul", (res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(Buffer.from('{"status":"completed","summary":"a\u0000b', "latin1"));
    });
    try {
      const t = await run("raw-nul");
      expect(t.state).toBe("failed");
      expect(t.attempts[0]?.error).toMatch(
        /^Worker raw-nul answered with malformed JSON \(.*\): \{"status":"completed","summary":"a\uFFFDb$/,
      );
      // The try's event was written (a NUL would have sunk its whole batch of events).
      const tried = await waitFor(
        "the try event",
        () => withEvents(s.http, { id: t.id }),
        (x) => x.events.some((e) => e.type === "attempt_try_failed"),
      );
      expect(tried.events.find((e) => e.type === "attempt_try_failed")?.data.error).toContain("a\uFFFDb");
    } finally {
      await w.close();
    }
  });

  it("keeps a streamed log line with a NUL or a lone surrogate, as U+FFFD, and the task goes on", async () => {
    // A worker relaying a script's binary output in a log line of its NDJSON answer.
    const relay = http.createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      if (req.url === "/health") {
        res.writeHead(200, { "content-type": "application/json" });
        return void res.end(JSON.stringify({ status: "ok", protocol: 1, capabilities: ["relay"], inFlight: 0 }));
      }
      const request = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      res.write(`${JSON.stringify({ type: "log", stream: "stdout", line: "bin\u0000ary \uD800 out" })}\n`);
      res.end(`${JSON.stringify({ type: "result", result: okResult(request) })}\n`);
    });
    await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve));
    try {
      const url = `http://127.0.0.1:${(relay.address() as AddressInfo).port}`;
      await s.http.workers.register.mutate({ name: "relay", url, capabilities: ["relay"] });
      const t = await run("relay");
      expect(t.state).toBe("accepted");
      const log = t.events.find((e) => e.type === "log");
      expect(log?.data.line).toBe("bin\uFFFDary \uFFFD out");
    } finally {
      relay.closeAllConnections();
      await new Promise<void>((resolve) => relay.close(() => resolve()));
    }
  });
});

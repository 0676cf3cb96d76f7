import { randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { ExecuteRequest, ExecuteResult } from "../../src/shared/worker-protocol.js";

/**
 * How the fault worker answers one `/execute`:
 * - `ok`: a completed result (after `durationMs`, streamed as NDJSON when `stream` is on);
 * - `503`: HTTP 503 (with `Retry-After: 0`, or `retryAfter`);
 * - `hang`: reads the request and never answers;
 * - `destroy`: reads the request and destroys the socket (the worker died mid-request);
 * - `close-mid-body`: 200 JSON announced at 1 KiB, a few bytes of it, then the socket destroyed;
 * - `close-mid-stream`: 200 NDJSON, one log line, then the socket destroyed;
 * - `malformed`: 200 with a body that is not JSON;
 * - `invalid`: 200 with JSON that does not match the protocol's result schema;
 * - `fail`: a `failed` result;
 * - `huge-json`: 200 JSON that never ends (`hugeBytes` of it, generated as it is sent: never held here);
 * - `huge-json-declared`: the same, announced with its Content-Length;
 * - `huge-line`: 200 NDJSON whose first line is `hugeBytes` long;
 * - `huge-error`: HTTP 500 with a `hugeBytes` body.
 */
export type Behaviour =
  | "ok"
  | "503"
  | "hang"
  | "destroy"
  | "close-mid-body"
  | "close-mid-stream"
  | "malformed"
  | "invalid"
  | "fail"
  | "huge-json"
  | "huge-json-declared"
  | "huge-line"
  | "huge-error";

export interface FaultWorkerOptions {
  /** Answers for the first requests, in order; after them every request gets `afterwards`. */
  script?: Behaviour[];
  afterwards?: Behaviour;
  /** `ok` answers take this long (a running task), unless canceled. */
  durationMs?: number;
  /** Answer `ok` as an NDJSON stream with a log line and a progress line first. */
  stream?: boolean;
  /** Does not answer `/cancel` at all (a worker that ignores it). */
  ignoreCancel?: boolean;
  /** `/health`: ok, HTTP 503, or a 200 that says `degraded` (still usable for dispatch, but a probe fails). */
  health?: "ok" | "503" | "degraded";
  /** The `Retry-After` header of `503` answers; default "0". */
  retryAfter?: string;
  /** Required bearer token. */
  token?: string;
  result?: (req: ExecuteRequest) => ExecuteResult;
  /** Size of the `huge-*` answers; default 500 MB. */
  hugeBytes?: number;
}

export interface FaultWorker {
  url: string;
  /** Every `/execute` request body, in arrival order. */
  requests: ExecuteRequest[];
  /** Idempotency keys seen, with how many times each started real work (must stay 1). */
  executions: Map<string, number>;
  /** For each task id, the most attempts it ever had running at once here (must stay 1). */
  maxConcurrentPerTask: Map<string, number>;
  /** The most runs of any tasks it had at once. */
  peakRuns(): number;
  cancels: { taskId: string; attempt: number; reason: string }[];
  authHeaders: (string | undefined)[];
  /** Bytes of `huge-*` bodies written to the socket so far, over all requests (what the reader made it send). */
  hugeBytesSent(): number;
  set(
    opts: Partial<Pick<FaultWorkerOptions, "afterwards" | "health" | "durationMs" | "ignoreCancel" | "retryAfter">>,
  ): void;
  close(): Promise<void>;
}

export const okResult = (req: ExecuteRequest): ExecuteResult => ({
  status: "completed",
  summary: `done ${req.taskId}:${req.attempt}`,
  artifacts: [
    {
      path: "out.txt",
      operation: "create",
      content: "ok\n",
      diff: "--- /dev/null\n+++ b/out.txt\n@@ -0,0 +1 @@\n+ok\n",
    },
  ],
});

/** A real HTTP worker that misbehaves on purpose. Idempotent like a real one: a repeated key attaches to the run. */
export async function startFaultWorker(opts: FaultWorkerOptions = {}): Promise<FaultWorker> {
  const state = { ...opts, script: [...(opts.script ?? [])] };
  const requests: ExecuteRequest[] = [];
  const executions = new Map<string, number>();
  const maxConcurrentPerTask = new Map<string, number>();
  const runningPerTask = new Map<string, number>();
  let running = 0;
  let peak = 0;
  const cancels: FaultWorker["cancels"] = [];
  const authHeaders: (string | undefined)[] = [];
  /** Runs by idempotency key: the result promise and how to stop it. */
  const runs = new Map<string, { result: Promise<ExecuteResult>; stop: () => void }>();
  const sockets = new Set<import("node:net").Socket>();
  let hugeSent = 0;

  /**
   * Writes `head`, then filler up to `total` bytes, then `tail`, chunk by chunk and only as fast as the
   * reader takes it; stops when the reader goes away. Nothing but one chunk is ever held here.
   */
  const sendHuge = async (res: http.ServerResponse, head: string, total: number, tail: string) => {
    const chunk = Buffer.alloc(64 * 1024, "x");
    let left = total - head.length - tail.length;
    const write = async (b: Buffer | string) => {
      if (res.destroyed) return false;
      hugeSent += typeof b === "string" ? Buffer.byteLength(b) : b.length;
      if (!res.write(b)) {
        await new Promise<void>((resolve) => {
          const done = () => {
            res.off("drain", done);
            res.off("close", done);
            resolve();
          };
          res.on("drain", done);
          res.on("close", done);
        });
      }
      return !res.destroyed;
    };
    if (!(await write(head))) return;
    while (left > 0) {
      const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
      left -= piece.length;
      if (!(await write(piece))) return;
    }
    if (await write(tail)) res.end();
  };

  const startRun = (key: string, req: ExecuteRequest): { result: Promise<ExecuteResult>; stop: () => void } => {
    executions.set(key, (executions.get(key) ?? 0) + 1);
    const now = (runningPerTask.get(req.taskId) ?? 0) + 1;
    runningPerTask.set(req.taskId, now);
    maxConcurrentPerTask.set(req.taskId, Math.max(maxConcurrentPerTask.get(req.taskId) ?? 0, now));
    peak = Math.max(peak, ++running);
    let stop = () => {};
    const result = new Promise<ExecuteResult>((resolve) => {
      let ended = false;
      const end = (r: ExecuteResult) => {
        if (ended) return;
        ended = true;
        runningPerTask.set(req.taskId, (runningPerTask.get(req.taskId) ?? 1) - 1);
        running--;
        resolve(r);
      };
      const timer = setTimeout(() => end((state.result ?? okResult)(req)), state.durationMs ?? 0);
      stop = () => {
        clearTimeout(timer);
        end({ status: "failed", summary: "canceled", artifacts: [], error: { message: "canceled" } });
      };
    });
    const run = { result, stop: () => stop() };
    runs.set(key, run);
    return run;
  };

  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    if (state.token && req.headers.authorization !== `Bearer ${state.token}`) {
      res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ error: "bad token" }));
      return;
    }
    if (req.url === "/health") {
      if (state.health === "503") return void res.writeHead(503).end("unhealthy");
      res.writeHead(200, { "content-type": "application/json" });
      const status = state.health === "degraded" ? "degraded" : "ok";
      return void res.end(JSON.stringify({ status, protocol: 1, capabilities: ["script"], inFlight: runs.size }));
    }
    if (req.url === "/cancel") {
      const c = JSON.parse(body) as { taskId: string; attempt: number; reason: string };
      cancels.push(c);
      if (state.ignoreCancel) return; // never answers
      const run = runs.get(`${c.taskId}:${c.attempt}`);
      run?.stop();
      res.writeHead(200, { "content-type": "application/json" });
      return void res.end(JSON.stringify({ status: run ? "canceled" : "not_running" }));
    }
    if (req.url !== "/execute") return void res.writeHead(404).end();
    const request = JSON.parse(body) as ExecuteRequest;
    requests.push(request);
    authHeaders.push(req.headers.authorization);
    const behaviour = state.script.shift() ?? state.afterwards ?? "ok";
    switch (behaviour) {
      case "503":
        return void res.writeHead(503, { "retry-after": state.retryAfter ?? "0" }).end("overloaded");
      case "hang":
        return;
      case "destroy":
        return void req.socket.destroy();
      case "close-mid-body":
        res.writeHead(200, { "content-type": "application/json", "content-length": "1024" });
        res.write('{"status": "completed", "summary": "');
        // Once the client has the headers and the first bytes: the worker dies while its answer is read.
        return void setTimeout(() => req.socket.destroy(), 20);
      case "close-mid-stream":
        res.writeHead(200, { "content-type": "application/x-ndjson" });
        res.write(`${JSON.stringify({ type: "log", stream: "stdout", line: "starting" })}\n`);
        return void setTimeout(() => req.socket.destroy(), 20);
      case "malformed":
        res.writeHead(200, { "content-type": "application/json" });
        return void res.end('{"status": "completed", "summary": ');
      case "invalid":
        res.writeHead(200, { "content-type": "application/json" });
        return void res.end(JSON.stringify({ status: "finished", artifacts: "none" }));
      case "huge-json":
      case "huge-json-declared": {
        const total = state.hugeBytes ?? 500_000_000;
        res.writeHead(200, {
          "content-type": "application/json",
          ...(behaviour === "huge-json-declared" ? { "content-length": String(total) } : {}),
        });
        return void sendHuge(res, '{"status":"completed","artifacts":[],"summary":"', total, '"}');
      }
      case "huge-line":
        res.writeHead(200, { "content-type": "application/x-ndjson" });
        return void sendHuge(res, '{"type":"log","stream":"stdout","line":"', state.hugeBytes ?? 500_000_000, '"}\n');
      case "huge-error":
        res.writeHead(500, { "content-type": "text/plain" });
        return void sendHuge(res, "worker exploded: ", state.hugeBytes ?? 500_000_000, "\n");
      case "fail":
        res.writeHead(200, { "content-type": "application/json" });
        return void res.end(
          JSON.stringify({ status: "failed", summary: "could not", artifacts: [], error: { message: "tool crashed" } }),
        );
    }
    const key = String(req.headers["idempotency-key"]);
    const run = runs.get(key) ?? startRun(key, request);
    if (state.stream) {
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      res.write(`${JSON.stringify({ type: "log", stream: "stdout", line: `working on ${key}` })}\n`);
      res.write(`${JSON.stringify({ type: "progress", percent: 50, message: "half way" })}\n`);
      const result = await run.result;
      return void res.end(`${JSON.stringify({ type: "result", result })}\n`);
    }
    const result = await run.result;
    if (res.destroyed) return;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(result));
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    executions,
    maxConcurrentPerTask,
    peakRuns: () => peak,
    cancels,
    authHeaders,
    hugeBytesSent: () => hugeSent,
    set(o) {
      Object.assign(state, o);
    },
    async close() {
      for (const r of runs.values()) r.stop();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * The URL of a worker whose process is gone: a port that was just listened on and closed, so a
 * connection to it is refused.
 */
export async function deadWorkerUrl(): Promise<string> {
  const probe = http.createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

// ---------------------------------------------------------------------------------------------
// The real server with its execution engine running, for execution tests.

import { createTRPCClient, httpBatchLink } from "@trpc/client";
import superjson from "superjson";
import { type App, createApp } from "../../src/server/app.js";
import type { AppRouter } from "../../src/server/router.js";
import { createServices, type Services } from "../../src/server/services.js";
import { freshDatabase, type TestDatabase } from "./databases.js";
import { silentLog, testConfig } from "./services.js";

/** Short timeouts and backoffs so fault tests run fast; none of them is asserted on. */
/** The bootstrap admin's API token every execution test client signs in with. */
export const ADMIN_TOKEN = "execution-tests-admin-token-0123456789abcdef";

export const FAST_ENV: Record<string, string> = {
  KEYSTORE: "env",
  AGENCY_MASTER_KEY: randomBytes(32).toString("base64"),
  AGENCY_ADMIN_PASSWORD: "execution-tests-password",
  AGENCY_BOOTSTRAP_TOKEN: ADMIN_TOKEN,
  // Vitest sets DEV in its environment: a spawned server inheriting it would start Vite's dev server.
  DEV: "0",
  DISPATCH_INTERVAL_MS: "50",
  LEASE_MS: "3000",
  RECOVERY_INTERVAL_MS: "500",
  WORKER_HEALTH_INTERVAL_MS: "500",
  WORKER_HEALTH_TIMEOUT_MS: "1000",
  CANCEL_TIMEOUT_MS: "500",
  RETRY_BASE_DELAY_MS: "10",
  RETRY_MAX_DELAY_MS: "50",
  BREAKER_FAILURES: "3",
  BREAKER_WINDOW_MS: "60000",
  BREAKER_HALF_OPEN_AFTER_MS: "300",
  BREAKER_CLOSE_AFTER_SUCCESSES: "2",
  RETRY_POLICY: JSON.stringify({
    1: { tryTimeoutMs: 5000 },
    2: { attempts: 2, tries: 3, tryTimeoutMs: 5000 },
    3: { attempts: 1, tries: 2, tryTimeoutMs: 1000 },
  }),
};

export interface EngineApp {
  url: string;
  app: App;
  db: TestDatabase;
  services: Services;
  http: ReturnType<typeof createTRPCClient<AppRouter>>;
  stop(): Promise<void>;
}

export async function startEngineApp(
  kind: "pglite" | "postgres",
  env: Record<string, string> = {},
): Promise<EngineApp> {
  const db = await freshDatabase(kind);
  // A DATA_DIR of this database's own (see testConfig in ./services.ts).
  const config = testConfig({ PORT: "0", HOST: "127.0.0.1", WEB_DIST_DIR: "/nonexistent", ...FAST_ENV, ...env });
  const services = await createServices(db, silentLog, config);
  await services.start();
  const app = createApp({ config, log: silentLog, services });
  await new Promise<void>((resolve) => app.server.listen(0, "127.0.0.1", resolve));
  const { port } = app.server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    app,
    db,
    services,
    http: createTRPCClient<AppRouter>({
      links: [
        httpBatchLink({
          url: `${url}/trpc`,
          transformer: superjson,
          headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        }),
      ],
    }),
    async stop() {
      await app.close();
      await services.stop();
      await db.dispose();
    },
  };
}

/** Polls until `check` returns a value (not undefined), or fails with the last value seen. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T>,
  check: (v: T) => boolean,
  timeoutMs = 20_000,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < until) {
    last = await probe();
    if (check(last)) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`Timed out waiting for ${what}; last value: ${JSON.stringify(last)?.slice(0, 2000)}`);
}

/**
 * Worker SDK: serve worker protocol v1 (`src/shared/worker-protocol.ts`) with a handler of your own.
 *
 * ```ts
 * import { createWorker } from "./sdk.js";
 *
 * const worker = createWorker({
 *   name: "echo",
 *   capabilities: ["echo"],
 *   token: process.env.WORKER_TOKEN,          // optional; when set, requests need `Authorization: Bearer <token>`
 *   maxConcurrency: 4,                         // more parallel runs answer 429 with Retry-After
 *   async handle({ request, workspace, signal, log, progress }) {
 *     log("info", `working on ${request.spec.title}`);
 *     progress(50, "halfway");
 *     await workspace.write("out.txt", "hello\n");   // path-guarded: no '..', no absolute paths, no symlink escape
 *     if (signal.aborted) throw signal.reason;        // canceled, past the deadline, client gone or shutting down
 *     return { status: "completed", summary: "wrote out.txt", artifacts: [{ path: "out.txt", operation: "create" }] };
 *   },
 * });
 * const { url } = await worker.listen(4100, "127.0.0.1");
 * // later: await worker.close();  worker.inFlight() counts handlers still running
 * ```
 *
 * Endpoints:
 * - `POST /execute`: an `ExecuteRequest`. Needs `Idempotency-Key: <taskId>:<attempt>` matching the body (400 when
 *   missing or different), a body within `maxBodyBytes` (413), valid JSON that matches the schema (400 with the
 *   issues), a capability this worker has (422). At `maxConcurrency` runs the answer is 429 with `Retry-After`.
 *   With `Accept: application/x-ndjson` the answer is a stream of `log` and `progress` lines as they happen, ending
 *   with one `result` line, and a `heartbeat` line whenever that answer has been quiet for `heartbeatMs` (default
 *   HEARTBEAT_EVERY_MS, 10 s; a repeat that attaches by Idempotency-Key gets its own); otherwise one JSON
 *   `ExecuteResult`, whose `logs` hold the run's log lines unless the handler set its own.
 * - `POST /cancel`: a `CancelRequest`. Aborts the run's signal and waits (up to `abortGraceMs`) for the handler to
 *   return, then answers `canceled`; `not_running` when nothing runs under that key. A cancel that arrives before
 *   its execute is remembered: that execute then answers `failed` (`canceled`) without running.
 * - Tracing: a W3C `traceparent` header on the `/execute` that starts a run makes the run's span (`agency.worker.run`,
 *   with the task id, attempt and outcome) a child of the agency's try, in a process that set up OpenTelemetry.
 * - `GET /health`: `WorkerHealth`. Needs no token, but a wrong token is refused (401) so a misconfigured client
 *   notices before it dispatches.
 *
 * Idempotency: one run per key. A repeat while the run is in progress attaches to it (a stream replays the lines so
 * far, then follows live; a JSON request waits for the result); a repeat after it finished gets the same result
 * from a bounded cache of recent results (`resultCacheSize`, plus a byte bound). A repeat whose body differs from the
 * first one (other than in `deadline`) is refused with 409. A run whose clients all disconnected goes on for
 * `detachedGraceMs` (default 60 s), so an agency that restarted re-attaches to it by its key; past that it is
 * aborted and forgotten, so a retry of that key (after the aborted run has stopped) starts afresh.
 *
 * Handler contract: `handle(ctx)` returns an `ExecuteResult` (validated; an invalid one becomes `failed` with code
 * `invalid_result`). A throw becomes `failed` with the error's message (`handler_error`), never a crash. The signal
 * aborts on cancel, at the request's `deadline`, when all clients disconnect, and on `close()`; its `reason` is a
 * `WorkerAbortError` whose `code` is `canceled`, `deadline_exceeded`, `client_disconnected` or `shutdown`. A handler
 * that does not return within `abortGraceMs` after the abort is answered `failed` with that code (it still counts in
 * `inFlight()` until it returns). `usage.durationMs` is filled in when the handler leaves it out.
 *
 * Workspaces: each run gets an empty directory `<workspacesDir>/<taskId>/<attempt>` (default: a fresh temporary
 * directory), removed after the run unless `keepWorkspaces` is set.
 *
 * Running scripts: `createScriptSandbox()` (re-exported here from `sandbox.ts`) runs a command confined by
 * bubblewrap in a workspace, with limits; pass its `mode` as `sandbox` so `/health` tells the agency whether this
 * worker's scripts are sandboxed.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import fs from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import {
  type Context,
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import type { z } from "zod";
import { canonicalJson } from "../shared/canonical-json.js";
import { ATTR, SPAN } from "../shared/telemetry.js";
import {
  type CancelResponse,
  cancelRequestSchema,
  type ExecuteRequest,
  type ExecuteResult,
  executeRequestSchema,
  executeResultSchema,
  HEARTBEAT_EVERY_MS,
  IDEMPOTENCY_HEADER,
  idempotencyKey,
  NDJSON_CONTENT_TYPE,
  PROTOCOL_VERSION,
  type SandboxState,
  type StreamLine,
  type WorkerHealth,
} from "../shared/worker-protocol.js";
import { createWorkspace, type Workspace } from "./workspace.js";

export {
  createScriptSandbox,
  DEFAULT_SANDBOX_LIMITS,
  type LimitHit,
  type LimitKind,
  SANDBOX_BASE_ENV,
  SANDBOX_WORKSPACE,
  type SandboxLimits,
  type SandboxMode,
  type SandboxNetwork,
  type SandboxOptions,
  SandboxRefusedError,
  type SandboxStatus,
  type ScriptOutcome,
  type ScriptRun,
  type ScriptSandbox,
  sandboxUnavailableMessage,
} from "./sandbox.js";

export type LogStream = "stdout" | "stderr" | "info";
export type AbortCode = "canceled" | "deadline_exceeded" | "client_disconnected" | "shutdown";

/** The `reason` of a run's aborted signal. */
export class WorkerAbortError extends Error {
  override readonly name = "WorkerAbortError";
  constructor(
    readonly code: AbortCode,
    message: string,
  ) {
    super(message);
  }
}

export interface WorkerContext {
  request: ExecuteRequest;
  workspace: Workspace;
  signal: AbortSignal;
  log(stream: LogStream, line: string): void;
  progress(percent?: number, message?: string): void;
}

export type WorkerHandler = (ctx: WorkerContext) => Promise<ExecuteResult> | ExecuteResult;

/** What the SDK logs through; a pino logger fits. */
export interface WorkerLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface CreateWorkerOptions {
  name?: string;
  capabilities: string[];
  handle: WorkerHandler;
  token?: string;
  maxConcurrency?: number;
  workspacesDir?: string;
  version?: string;
  /** Largest request body accepted; default 4 MiB (a spec plus a critique of 500 findings fits). */
  maxBodyBytes?: number;
  /** Finished results kept for idempotent repeats; default 1,000 entries and 64 MiB. */
  resultCacheSize?: number;
  resultCacheBytes?: number;
  /** How long a handler has to return after its signal aborted; default 10 s. */
  abortGraceMs?: number;
  keepWorkspaces?: boolean;
  logger?: WorkerLogger;
  /** Reported in `/health`: how this worker's scripts are confined (asked on every health request). */
  sandbox?: SandboxState | (() => Promise<SandboxState>);
  /**
   * A streamed `/execute` answer that has been quiet this long gets a `heartbeat` line, so the agency's idle timeout
   * tells a quiet run from a dead worker; default HEARTBEAT_EVERY_MS. 0 sends none.
   */
  heartbeatMs?: number;
  /**
   * How long a run goes on after every client waiting for it disconnected (an agency restarting re-attaches by the
   * Idempotency-Key); default 60 s, longer than the agency's LEASE_MS + RECOVERY_INTERVAL_MS. 0 aborts at once.
   */
  detachedGraceMs?: number;
}

export interface Worker {
  listen(port: number, host?: string): Promise<{ url: string; port: number }>;
  close(): Promise<void>;
  inFlight(): number;
}

const MAX_LINE_CHARS = 100_000;
const MAX_PROGRESS_MESSAGE = 2_000;
/** Lines a run keeps for late attachers and for the JSON answer's `logs`. */
const REPLAY_MAX_LINES = 2_000;
const REPLAY_MAX_CHARS = 1_000_000;
const RESULT_LOG_LINES = 1_000;

const HEARTBEAT_LINE: StreamLine = { type: "heartbeat" };

const silentLogger: WorkerLogger = { info() {}, warn() {}, error() {} };

/**
 * A span per run, a child of the `traceparent` its first `/execute` carried. It is recorded only in a process that
 * set up OpenTelemetry (the reference worker does when OTEL_EXPORTER_OTLP_ENDPOINT is set); otherwise the API's
 * tracer is the no-op one.
 */
const tracer = trace.getTracer("agent-agency-worker-sdk");

function endRunSpan(span: Span, result: ExecuteResult): void {
  span.setAttribute(ATTR.outcome, result.status);
  if (result.status === "failed") {
    if (result.error?.code) span.setAttribute(ATTR.errorKind, result.error.code);
    span.setStatus({ code: SpanStatusCode.ERROR, message: (result.error?.message ?? result.summary).slice(0, 1000) });
  }
  span.end();
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

interface Run {
  key: string;
  fingerprint: string;
  controller: AbortController;
  lines: StreamLine[];
  lineChars: number;
  droppedLines: number;
  subscribers: Set<(line: StreamLine) => void>;
  clients: number;
  /** Set while no client waits: aborts the run when it fires. */
  detached?: NodeJS.Timeout;
  result?: ExecuteResult;
  done: Promise<ExecuteResult>;
  /** Settles when the handler itself has returned (or thrown), which may be after `done`. */
  settled: Promise<void>;
}

interface CachedRun {
  /** `undefined`: a cancel tombstone, which any body may claim. */
  fingerprint?: string;
  result: ExecuteResult;
  lines: StreamLine[];
  droppedLines: number;
  bytes: number;
}

const sha256 = (s: string) => createHash("sha256").update(s).digest();

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 20)
    .map((i) => `${i.path.length ? i.path.join(".") : "(body)"}: ${i.message}`)
    .join("; ");
}

function truncate(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

function failed(code: string, message: string, durationMs?: number): ExecuteResult {
  return {
    status: "failed",
    summary: truncate(message, 1_000),
    artifacts: [],
    error: { code, message: truncate(message, 10_000) },
    ...(durationMs !== undefined ? { usage: { durationMs } } : {}),
  };
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  if (res.headersSent) {
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
    ...headers,
  });
  res.end(text);
}

async function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) {
    throw new HttpError(413, `Request body is larger than ${limit} bytes`, { connection: "close" });
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new HttpError(413, `Request body is larger than ${limit} bytes`, { connection: "close" });
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

async function readJson(req: http.IncomingMessage, limit: number): Promise<unknown> {
  const body = await readBody(req, limit);
  if (body.length === 0) throw new HttpError(400, "Request body is empty; expected a JSON object");
  try {
    return JSON.parse(body.toString("utf8"));
  } catch (err) {
    throw new HttpError(400, `Request body is not valid JSON: ${(err as Error).message}`);
  }
}

export function createWorker(options: CreateWorkerOptions): Worker {
  const maxConcurrency = options.maxConcurrency ?? 4;
  if (!Number.isInteger(maxConcurrency) || maxConcurrency < 1) {
    throw new Error(`maxConcurrency must be a positive integer, got ${maxConcurrency}`);
  }
  if (options.capabilities.length === 0) throw new Error("A worker needs at least one capability");
  const capabilities = [...new Set(options.capabilities)];
  const maxBodyBytes = options.maxBodyBytes ?? 4 * 1024 * 1024;
  const cacheMax = options.resultCacheSize ?? 1_000;
  const cacheMaxBytes = options.resultCacheBytes ?? 64 * 1024 * 1024;
  const abortGraceMs = options.abortGraceMs ?? 10_000;
  const heartbeatMs = options.heartbeatMs ?? HEARTBEAT_EVERY_MS;
  if (!Number.isInteger(heartbeatMs) || heartbeatMs < 0 || heartbeatMs > 2_147_483_647) {
    throw new Error(`heartbeatMs must be 0 (none) or a whole number of milliseconds up to 2^31-1, got ${heartbeatMs}`);
  }
  const detachedGraceMs = options.detachedGraceMs ?? 60_000;
  if (!Number.isInteger(detachedGraceMs) || detachedGraceMs < 0 || detachedGraceMs > 2_147_483_647) {
    throw new Error(`detachedGraceMs must be a whole number of milliseconds up to 2^31-1, got ${detachedGraceMs}`);
  }
  const log = options.logger ?? silentLogger;
  const expectedToken = options.token ? sha256(options.token) : undefined;

  const running = new Map<string, Run>();
  const cache = new Map<string, CachedRun>();
  let cacheBytes = 0;
  let handlersRunning = 0;
  const unsettled = new Set<Promise<void>>();
  let closing = false;
  let server: http.Server | undefined;
  let workspacesDir = options.workspacesDir;
  let ownWorkspacesDir = false;

  const remember = (key: string, entry: Omit<CachedRun, "bytes">) => {
    const previous = cache.get(key);
    if (previous) {
      cacheBytes -= previous.bytes;
      cache.delete(key);
    }
    const bytes = JSON.stringify(entry.result).length + entry.lines.reduce((n, l) => n + JSON.stringify(l).length, 0);
    cache.set(key, { ...entry, bytes });
    cacheBytes += bytes;
    for (const [oldest, value] of cache) {
      if (cache.size <= cacheMax && cacheBytes <= cacheMaxBytes) break;
      cache.delete(oldest);
      cacheBytes -= value.bytes;
    }
  };

  /** undefined: no Authorization header. */
  const checkToken = (header: string | undefined): boolean | undefined => {
    if (header === undefined) return undefined;
    if (!expectedToken) return true;
    const match = /^Bearer\s+(.+)$/i.exec(header.trim());
    const given = sha256(match?.[1] ?? "");
    return timingSafeEqual(given, expectedToken) && match !== null;
  };
  const requireToken = (req: http.IncomingMessage) => {
    if (!expectedToken) return;
    const ok = checkToken(req.headers.authorization);
    if (ok === undefined) {
      throw new HttpError(401, "Missing Authorization header; expected 'Bearer <worker token>'", {
        "www-authenticate": "Bearer",
      });
    }
    if (!ok) throw new HttpError(401, "Worker token does not match", { "www-authenticate": "Bearer" });
  };

  const ensureWorkspacesDir = async (): Promise<string> => {
    if (!workspacesDir) {
      workspacesDir = await fs.mkdtemp(path.join(os.tmpdir(), "agent-agency-worker-"));
      ownWorkspacesDir = true;
    }
    return workspacesDir;
  };

  const abortRun = (run: Run, code: AbortCode, message: string) => {
    if (run.controller.signal.aborted || run.result) return;
    log.info({ key: run.key, code }, `aborting run: ${message}`);
    run.controller.abort(new WorkerAbortError(code, message));
  };

  const lineChars = (line: StreamLine) =>
    line.type === "log" ? line.line.length : line.type === "progress" ? (line.message?.length ?? 0) + 20 : 0;
  const emit = (run: Run, line: StreamLine) => {
    if (run.result) return;
    run.lines.push(line);
    run.lineChars += lineChars(line);
    while (run.lines.length > REPLAY_MAX_LINES || run.lineChars > REPLAY_MAX_CHARS) {
      const dropped = run.lines.shift();
      if (!dropped) break;
      run.droppedLines++;
      run.lineChars -= lineChars(dropped);
    }
    for (const subscriber of run.subscribers) subscriber(line);
  };

  const startRun = (request: ExecuteRequest, key: string, fingerprint: string, parent: Context): Run => {
    const controller = new AbortController();
    const span = tracer.startSpan(
      SPAN.workerRun,
      {
        kind: SpanKind.SERVER,
        attributes: {
          [ATTR.taskId]: request.taskId,
          [ATTR.attempt]: request.attempt,
          ...(options.name ? { [ATTR.worker]: options.name } : {}),
        },
      },
      parent,
    );
    const runContext = trace.setSpan(parent, span);
    const startedAt = performance.now();
    const elapsed = () => Math.round(performance.now() - startedAt);
    let resolveDone!: (r: ExecuteResult) => void;
    const done = new Promise<ExecuteResult>((r) => {
      resolveDone = r;
    });
    const run: Run = {
      key,
      fingerprint,
      controller,
      lines: [],
      lineChars: 0,
      droppedLines: 0,
      subscribers: new Set(),
      clients: 0,
      done,
      settled: Promise.resolve(),
    };
    running.set(key, run);
    handlersRunning++;

    const finish = (result: ExecuteResult) => {
      if (run.result) return;
      run.result = result;
      clearTimeout(deadlineTimer);
      clearTimeout(graceTimer);
      clearTimeout(run.detached);
      running.delete(key);
      const reason = controller.signal.reason;
      const disconnected = reason instanceof WorkerAbortError && reason.code === "client_disconnected";
      // A run nobody waited for is forgotten, so the client's retry can run the work afresh.
      if (!disconnected) remember(key, { fingerprint, result, lines: run.lines, droppedLines: run.droppedLines });
      log.info({ key, status: result.status, error: result.error?.code, durationMs: elapsed() }, "run finished");
      endRunSpan(span, result);
      resolveDone(result);
    };

    const delay = Date.parse(request.deadline) - Date.now();
    // setTimeout fires at once beyond 2^31-1 ms; a deadline more than 24 days away is no deadline in practice.
    const deadlineTimer =
      delay <= 2_147_483_647
        ? setTimeout(
            () => abortRun(run, "deadline_exceeded", `Deadline ${request.deadline} passed`),
            Math.max(0, delay),
          )
        : undefined;
    let graceTimer: NodeJS.Timeout | undefined;
    controller.signal.addEventListener("abort", () => {
      const reason = controller.signal.reason as WorkerAbortError;
      graceTimer = setTimeout(() => {
        log.warn({ key, graceMs: abortGraceMs }, "handler did not return after its signal aborted");
        finish(failed(reason.code, `${reason.message}; the handler did not stop within ${abortGraceMs} ms`, elapsed()));
      }, abortGraceMs);
    });

    const execute = async (): Promise<void> => {
      let workspace: Workspace | undefined;
      try {
        workspace = await createWorkspace(await ensureWorkspacesDir(), request.taskId, request.attempt);
        const ctx: WorkerContext = {
          request,
          workspace,
          signal: controller.signal,
          log(stream, line) {
            const s: LogStream = stream === "stdout" || stream === "stderr" ? stream : "info";
            emit(run, { type: "log", stream: s, line: truncate(String(line), MAX_LINE_CHARS) });
          },
          progress(percent, message) {
            const p =
              typeof percent === "number" && Number.isFinite(percent) ? Math.min(100, Math.max(0, percent)) : undefined;
            emit(run, {
              type: "progress",
              ...(p !== undefined ? { percent: p } : {}),
              ...(message !== undefined ? { message: truncate(String(message), MAX_PROGRESS_MESSAGE) } : {}),
            });
          },
        };
        // The handler's own spans, if it makes any, are children of the run's.
        const raw = await context.with(runContext, () => options.handle(ctx));
        const parsed = executeResultSchema.safeParse(raw);
        if (!parsed.success) {
          finish(
            failed(
              "invalid_result",
              `The handler returned a result that does not match the protocol: ${describeIssues(parsed.error)}`,
              elapsed(),
            ),
          );
        } else {
          const result = parsed.data;
          finish({ ...result, usage: { ...result.usage, durationMs: result.usage?.durationMs ?? elapsed() } });
        }
      } catch (err) {
        const reason = controller.signal.reason;
        if (controller.signal.aborted && reason instanceof WorkerAbortError) {
          finish(failed(reason.code, reason.message, elapsed()));
        } else {
          const message = err instanceof Error ? err.message : String(err);
          log.warn({ key, err: message }, "handler threw");
          finish(
            failed(
              err instanceof Error && err.name === "WorkspacePathError" ? "workspace_path" : "handler_error",
              `Handler failed: ${message}`,
              elapsed(),
            ),
          );
        }
      } finally {
        handlersRunning--;
        if (workspace && !options.keepWorkspaces) {
          await fs.rm(workspace.root, { recursive: true, force: true }).catch((err: Error) => {
            log.warn({ key, err: err.message }, "could not remove workspace");
          });
          // The task's directory goes too once its last attempt's workspace is gone (ENOTEMPTY otherwise).
          await fs.rmdir(path.dirname(workspace.root)).catch(() => {});
        }
      }
    };
    const settled = execute();
    run.settled = settled;
    unsettled.add(settled);
    void settled.finally(() => unsettled.delete(settled));
    return run;
  };

  const resultWithLogs = (result: ExecuteResult, lines: StreamLine[], droppedLines: number): ExecuteResult => {
    if (result.logs) return result;
    const logs = lines.flatMap((l) => (l.type === "log" ? [l.line] : []));
    if (logs.length === 0) return result;
    const kept = logs.slice(-RESULT_LOG_LINES);
    const skipped = droppedLines + logs.length - kept.length;
    return { ...result, logs: skipped > 0 ? [`(${skipped} earlier log lines omitted)`, ...kept] : kept };
  };

  const wantsStream = (req: http.IncomingMessage) => (req.headers.accept ?? "").includes(NDJSON_CONTENT_TYPE);

  const startStream = (res: http.ServerResponse, droppedLines: number) => {
    res.writeHead(200, {
      "content-type": `${NDJSON_CONTENT_TYPE}; charset=utf-8`,
      "cache-control": "no-store",
      "x-accel-buffering": "no",
    });
    res.flushHeaders();
    if (droppedLines > 0) {
      writeLine(res, { type: "log", stream: "info", line: `(${droppedLines} earlier lines are no longer available)` });
    }
  };
  const writeLine = (res: http.ServerResponse, line: StreamLine) => {
    if (!res.writableEnded && !res.destroyed) res.write(`${JSON.stringify(line)}\n`);
  };

  const replyCached = (req: http.IncomingMessage, res: http.ServerResponse, cached: CachedRun) => {
    if (wantsStream(req)) {
      startStream(res, cached.droppedLines);
      for (const line of cached.lines) writeLine(res, line);
      writeLine(res, { type: "result", result: cached.result });
      res.end();
    } else {
      sendJson(res, 200, resultWithLogs(cached.result, cached.lines, cached.droppedLines));
    }
  };

  const attach = async (req: http.IncomingMessage, res: http.ServerResponse, run: Run) => {
    run.clients++;
    clearTimeout(run.detached);
    run.detached = undefined;
    const stream = wantsStream(req);
    // Each streamed answer gets its own heartbeat: a line whenever this answer has been quiet for heartbeatMs.
    let heartbeat: NodeJS.Timeout | undefined;
    const stopHeartbeat = () => {
      clearInterval(heartbeat);
      heartbeat = undefined;
    };
    const subscriber = (line: StreamLine) => {
      writeLine(res, line);
      heartbeat?.refresh();
    };
    if (stream) {
      startStream(res, run.droppedLines);
      for (const line of run.lines) writeLine(res, line);
      run.subscribers.add(subscriber);
      if (heartbeatMs > 0) heartbeat = setInterval(() => writeLine(res, HEARTBEAT_LINE), heartbeatMs);
    }
    res.on("close", () => {
      stopHeartbeat();
      run.subscribers.delete(subscriber);
      if (res.writableFinished) return;
      run.clients--;
      if (run.clients === 0 && !run.result) {
        const abandon = () => abortRun(run, "client_disconnected", "Every client waiting for this run disconnected");
        if (detachedGraceMs === 0) abandon();
        else run.detached = setTimeout(abandon, detachedGraceMs).unref();
      }
    });
    const result = await run.done;
    stopHeartbeat();
    run.subscribers.delete(subscriber);
    if (res.destroyed) return;
    if (stream) {
      writeLine(res, { type: "result", result });
      res.end();
    } else {
      sendJson(res, 200, resultWithLogs(result, run.lines, run.droppedLines));
    }
  };

  const handleExecute = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    requireToken(req);
    const body = await readJson(req, maxBodyBytes);
    const parsed = executeRequestSchema.safeParse(body);
    if (!parsed.success) throw new HttpError(400, `Invalid execute request: ${describeIssues(parsed.error)}`);
    const request = parsed.data;
    const key = idempotencyKey(request.taskId, request.attempt);
    const header = req.headers[IDEMPOTENCY_HEADER];
    if (typeof header !== "string" || header.length === 0) {
      throw new HttpError(400, `Missing Idempotency-Key header; expected '${key}' (<taskId>:<attempt>)`);
    }
    if (header !== key) {
      throw new HttpError(400, `Idempotency-Key '${truncate(header, 200)}' does not match the body; expected '${key}'`);
    }
    if (!capabilities.includes(request.spec.capability)) {
      throw new HttpError(
        422,
        `This worker has no '${request.spec.capability}' capability (it has: ${capabilities.join(", ")})`,
      );
    }
    // The deadline is left out: a client retrying the same attempt may send a fresher one, and that is not new work.
    const { deadline: _deadline, ...work } = request;
    const fingerprint = sha256(canonicalJson(work)).toString("hex");

    for (;;) {
      const cached = cache.get(key);
      if (cached) {
        if (cached.fingerprint !== undefined && cached.fingerprint !== fingerprint) {
          throw new HttpError(409, `Idempotency-Key '${key}' was already used with a different request body`);
        }
        replyCached(req, res, cached);
        return;
      }
      const run = running.get(key);
      if (!run) break;
      if (run.fingerprint !== fingerprint) {
        throw new HttpError(409, `Idempotency-Key '${key}' is in use by a run with a different request body`);
      }
      const reason = run.controller.signal.reason;
      if (reason instanceof WorkerAbortError && reason.code === "client_disconnected") {
        // The abandoned run is stopping; wait for it so the work never runs twice at once, then start afresh.
        await run.done;
        continue;
      }
      await attach(req, res, run);
      return;
    }

    if (closing) throw new HttpError(503, "Worker is shutting down", { "retry-after": "5" });
    if (Date.parse(request.deadline) <= Date.now()) {
      const result = failed("deadline_exceeded", `Deadline ${request.deadline} had already passed on arrival`, 0);
      remember(key, { fingerprint, result, lines: [], droppedLines: 0 });
      replyCached(req, res, { fingerprint, result, lines: [], droppedLines: 0, bytes: 0 });
      return;
    }
    if (handlersRunning >= maxConcurrency) {
      throw new HttpError(429, `Worker is at its concurrency limit (${maxConcurrency} runs)`, { "retry-after": "1" });
    }
    log.info({ key, title: request.spec.title }, "run started");
    await attach(req, res, startRun(request, key, fingerprint, propagation.extract(ROOT_CONTEXT, req.headers)));
  };

  const handleCancel = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    requireToken(req);
    const parsed = cancelRequestSchema.safeParse(await readJson(req, 64 * 1024));
    if (!parsed.success) throw new HttpError(400, `Invalid cancel request: ${describeIssues(parsed.error)}`);
    const { taskId, attempt, reason } = parsed.data;
    const key = idempotencyKey(taskId, attempt);
    const run = running.get(key);
    let answer: CancelResponse;
    if (run && !run.result) {
      abortRun(run, "canceled", `Canceled: ${reason}`);
      await run.done;
      answer = { status: "canceled" };
    } else {
      if (!cache.has(key)) {
        remember(key, {
          result: failed("canceled", `Canceled before it started: ${reason}`, 0),
          lines: [],
          droppedLines: 0,
        });
      }
      answer = { status: "not_running" };
    }
    sendJson(res, 200, answer);
  };

  const handleHealth = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (checkToken(req.headers.authorization) === false) {
      throw new HttpError(401, "Worker token does not match", { "www-authenticate": "Bearer" });
    }
    const sandbox = typeof options.sandbox === "function" ? await options.sandbox() : options.sandbox;
    const health: WorkerHealth = {
      status: closing ? "degraded" : "ok",
      protocol: PROTOCOL_VERSION,
      capabilities,
      inFlight: handlersRunning,
      maxConcurrency,
      ...(options.version ? { version: options.version } : {}),
      ...(sandbox ? { sandbox } : {}),
    };
    sendJson(res, 200, options.name ? { ...health, name: options.name } : health);
  };

  const routes: Record<string, { method: string; run: typeof handleExecute }> = {
    "/execute": { method: "POST", run: handleExecute },
    "/cancel": { method: "POST", run: handleCancel },
    "/health": { method: "GET", run: handleHealth },
  };

  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const pathname = new URL(req.url ?? "/", "http://worker").pathname;
    const route = routes[pathname];
    const respond = async () => {
      if (!route) throw new HttpError(404, `No such endpoint: ${pathname}`);
      if (req.method !== route.method) {
        throw new HttpError(405, `${pathname} accepts ${route.method} only`, { allow: route.method });
      }
      await route.run(req, res);
    };
    respond().catch((err: unknown) => {
      if (err instanceof HttpError) {
        sendJson(res, err.status, { error: err.message, status: err.status }, err.headers);
        if (err.headers.connection === "close") req.destroy();
        return;
      }
      log.error({ err: err instanceof Error ? err.message : String(err), path: pathname }, "request failed");
      sendJson(res, 500, { error: "Internal worker error", status: 500 });
    });
  };

  return {
    async listen(port, host = "127.0.0.1") {
      if (server) throw new Error("Worker is already listening");
      const s = http.createServer(onRequest);
      s.on("clientError", (_err, socket) => {
        if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n");
      });
      await new Promise<void>((resolve, reject) => {
        s.once("error", reject);
        s.listen(port, host, () => {
          s.off("error", reject);
          resolve();
        });
      });
      server = s;
      const actual = (s.address() as AddressInfo).port;
      const urlHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
      return { url: `http://${urlHost}:${actual}`, port: actual };
    },
    async close() {
      closing = true;
      for (const run of running.values()) abortRun(run, "shutdown", "Worker is shutting down");
      await Promise.all([...running.values()].map((r) => r.done));
      // Handlers past their grace period get one more grace period, then the process may exit under them.
      await Promise.race([Promise.all([...unsettled]), new Promise((r) => setTimeout(r, abortGraceMs).unref())]);
      if (server) {
        const s = server;
        server = undefined;
        await new Promise<void>((resolve) => {
          s.close(() => resolve());
          s.closeAllConnections();
        });
      }
      if (ownWorkspacesDir && workspacesDir) await fs.rm(workspacesDir, { recursive: true, force: true });
    },
    inFlight: () => handlersRunning,
  };
}

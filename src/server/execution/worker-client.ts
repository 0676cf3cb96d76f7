import { type Context, SpanKind, trace } from "@opentelemetry/api";
import {
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_URL_FULL,
} from "@opentelemetry/semantic-conventions";
import pRetry from "p-retry";
import { type Dispatcher, request } from "undici";
import type { z } from "zod";
import { ATTR, SPAN } from "../../shared/telemetry.js";
import { toStorableText } from "../../shared/text.js";
import {
  type CancelRequest,
  cancelResponseSchema,
  type ExecuteRequest,
  type ExecuteResult,
  executeResultSchema,
  IDEMPOTENCY_HEADER,
  idempotencyKey,
  NDJSON_CONTENT_TYPE,
  type StreamLine,
  streamLineSchema,
  type WorkerHealth,
  workerHealthSchema,
} from "../../shared/worker-protocol.js";
import type { WorkerProtocol } from "../../shared/workers.js";
import type { TierPolicy } from "../config.js";
import { DomainError } from "../errors.js";
import type { SecretBox } from "../keystore/secrets.js";
import { inSpan, traceHeaders } from "../telemetry/tracing.js";
import { assertAllowedWorkerUrl, workerEndpoint } from "../workers/allowlist.js";
import type { BreakerRegistry } from "../workers/breakers.js";
import { openWorkerToken } from "../workers/token.js";
import type { A2AAttempts } from "./a2a-attempts.js";
import { A2AClient } from "./a2a-client.js";
import { abortableDelay, formatDuration, leastBackoffMs, parseRetryAfter, retryBackoff } from "./backoff.js";
import { type CallPhase, classifyCallError, WorkerCallError } from "./errors.js";

export interface WorkerTarget {
  id: string;
  name: string;
  url: string;
  /** The bearer token as stored (sealed; one stored in clear by an older version is taken as is), or null. */
  token: string | null;
  /** How to call it: protocol v1 (absent: v1) or Agent2Agent (`url` is then its Agent Card's). */
  protocol?: WorkerProtocol;
}

export interface ClientSettings {
  allowedHosts: readonly string[];
  retryBaseDelayMs: number;
  retryMaxDelayMs: number;
  cancelTimeoutMs: number;
  healthTimeoutMs: number;
  /** WORKER_MAX_RESPONSE_BYTES: a JSON answer, or one NDJSON line, is read no further than this. */
  maxResponseBytes: number;
  /** WORKER_MAX_ARTIFACT_BYTES: content plus diffs of one result's artifacts (UTF-8 bytes). */
  maxArtifactBytes: number;
  /** WORKER_MAX_ARTIFACTS: artifacts in one result. */
  maxArtifacts: number;
  /** A2A_POLL_INTERVAL_MS: how often an A2A agent that does not stream is asked how its task goes (default 500). */
  a2aPollIntervalMs?: number;
}

export type ProgressLine = Exclude<StreamLine, { type: "result" } | { type: "heartbeat" }>;

export interface ExecuteCall {
  worker: WorkerTarget;
  request: ExecuteRequest;
  policy: TierPolicy;
  /** Epoch ms: no try starts after it and the running one is cut off there. */
  deadline: number;
  /** Aborted on cancel or shutdown; its reason becomes the error. */
  signal: AbortSignal;
  onLine?: (line: ProgressLine) => void;
  onTryFailed?: (tryNumber: number, error: WorkerCallError, nextDelayMs: number | null) => void;
  /** The attempt's trace context: each try is a span under it (absent: the active context). */
  trace?: Context;
}

export interface ExecuteOutcome {
  result: ExecuteResult;
  tries: number;
}

const MAX_ERROR_BODY = 500;
/** Bodies read only for a message or a small protocol answer (errors, /cancel, /health): the rest is not read. */
const SMALL_BODY_BYTES = 64 * 1024;

function zodMessage(err: z.ZodError): string {
  return err.issues
    .slice(0, 5)
    .map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`)
    .join("; ");
}

/** `artifacts[3].content`: where in a result a bad value sits. */
const fieldPath = (path: readonly PropertyKey[]) =>
  path.map((k, i) => (typeof k === "number" ? `[${k}]` : `${i ? "." : ""}${String(k)}`)).join("");

export function formatBytes(n: number): string {
  const units: [number, string][] = [
    [1024 ** 3, "GiB"],
    [1024 ** 2, "MiB"],
    [1024, "KiB"],
  ];
  for (const [size, unit] of units) {
    if (n >= size) return `${Number.isInteger(n / size) ? n / size : (n / size).toFixed(1)} ${unit}`;
  }
  return `${n} bytes`;
}

function tooLarge(message: string): WorkerCallError {
  // The worker's fault and not transient: another try would send the same answer, and read it again.
  return new WorkerCallError("too_large", message, { retryable: false, countsAgainstWorker: true });
}

/** Thrown by readCapped; the caller names the limit. */
class OverCap extends Error {
  constructor(readonly read: number) {
    super("over the cap");
  }
}

/**
 * Reads a body up to `limit` bytes. Past it, stops and destroys the stream: the rest is never
 * buffered (the caller's abort then closes the connection). `truncate`: return what fits instead.
 */
async function readCapped(
  body: Dispatcher.ResponseData["body"],
  limit: number,
  opts: { truncate?: boolean; onChunk?: () => void } = {},
): Promise<{ buffer: Buffer; truncated: boolean }> {
  const chunks: Buffer[] = [];
  let read = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    opts.onChunk?.();
    if (read + chunk.length > limit) {
      body.destroy();
      if (!opts.truncate) throw new OverCap(read + chunk.length);
      chunks.push(chunk.subarray(0, limit - read));
      return { buffer: Buffer.concat(chunks), truncated: true };
    }
    chunks.push(chunk);
    read += chunk.length;
  }
  return { buffer: Buffer.concat(chunks), truncated: false };
}

const declaredLength = (res: HttpResponse): number | null => {
  const v = Number(header(res, "content-length"));
  return Number.isFinite(v) && v >= 0 ? v : null;
};

function notAllowed(err: unknown): WorkerCallError {
  return new WorkerCallError("not_allowed", (err as Error).message, { retryable: false, countsAgainstWorker: false });
}

type HttpResponse = Dispatcher.ResponseData;

/**
 * One HTTP request through undici (several times cheaper per call than fetch). Its own header and
 * body timeouts are off: the caller's timers and signal decide how long a worker may take.
 */
function http(
  url: string,
  opts: { method?: "GET" | "POST"; headers: Record<string, string>; body?: string; signal: AbortSignal },
) {
  return request(url, { ...opts, headersTimeout: 0, bodyTimeout: 0 });
}

const header = (res: HttpResponse, name: string): string | null => {
  const v = res.headers[name];
  return Array.isArray(v) ? (v[0] ?? null) : (v ?? null);
};

const ok = (res: HttpResponse) => res.statusCode >= 200 && res.statusCode < 300;

/** What bounds an attempt: `budget.maxDurationSec` when the spec has one, else the tier's deadline. */
function deadlineName(call: ExecuteCall): string {
  const budget = call.request.spec.budget.maxDurationSec;
  return budget
    ? `the task's deadline of ${formatDuration(budget * 1000)} (budget.maxDurationSec)`
    : `the task's deadline of ${formatDuration(call.policy.deadlineMs)} (tier ${call.request.spec.riskTier})`;
}

/** The deadline is the task's policy, not the worker's health: it neither counts against the worker nor is retried. */
function deadlineError(call: ExecuteCall): WorkerCallError {
  const name = deadlineName(call);
  return new WorkerCallError("deadline", `${name[0]?.toUpperCase()}${name.slice(1)} passed.`, {
    retryable: false,
    countsAgainstWorker: false,
  });
}

/** The per-try idle timeout: the worker said nothing (no answer, no line, no data) for the tier's tryTimeoutMs. */
function idleTimeoutError(call: ExecuteCall, phase: CallPhase): WorkerCallError {
  const { worker, policy, request } = call;
  const what = phase === "reach" ? "No answer from" : "No line from";
  return new WorkerCallError(
    "timeout",
    `${what} worker ${worker.name} for ${formatDuration(policy.tryTimeoutMs)} (tier ${request.spec.riskTier}'s idle timeout per try; a worker sends heartbeats while it works).`,
    { retryable: true, countsAgainstWorker: true },
  );
}

/**
 * Calls workers over protocol v1: tries retried by p-retry with its own backoff, every try through
 * the worker's circuit breaker (cockatiel), NDJSON streamed line by line, results checked against
 * the protocol schema.
 */
export class WorkerClient {
  /** Opened tokens by their sealed form, so each worker's token is decrypted once rather than per call. */
  private readonly opened = new Map<string, string>();
  /** The second transport: workers registered with `protocol: "a2a"`, one try at a time (a2a-client.ts). */
  readonly a2a: A2AClient;

  constructor(
    private readonly settings: ClientSettings,
    private readonly breakers: BreakerRegistry,
    private readonly box: SecretBox,
    a2aAttempts: A2AAttempts | null = null,
  ) {
    this.a2a = new A2AClient(
      {
        allowedHosts: settings.allowedHosts,
        maxResponseBytes: settings.maxResponseBytes,
        cancelTimeoutMs: settings.cancelTimeoutMs,
        healthTimeoutMs: settings.healthTimeoutMs,
        pollIntervalMs: settings.a2aPollIntervalMs ?? 500,
      },
      (worker) => this.openToken(worker),
      a2aAttempts,
    );
  }

  /** A worker's token in clear: the only place one is opened. */
  private openToken(worker: WorkerTarget): string | null {
    if (!worker.token) return null;
    let token = this.opened.get(worker.token);
    if (token === undefined) {
      token = openWorkerToken(this.box, worker.token) as string;
      // Bounded: a worker's token changes rarely, but every change leaves a stale entry behind.
      if (this.opened.size >= 1000) this.opened.clear();
      this.opened.set(worker.token, token);
    }
    return token;
  }

  /** The Authorization header for a worker. */
  private auth(worker: WorkerTarget): Record<string, string> {
    const token = this.openToken(worker);
    return token === null ? {} : { authorization: `Bearer ${token}` };
  }

  /** One try on the worker's protocol; an A2A result is held to the same caps as a v1 one. */
  private async tryOn(call: ExecuteCall, signal: AbortSignal): Promise<ExecuteResult> {
    if (call.worker.protocol !== "a2a") return this.tryExecute(call, signal);
    const result = await this.a2a.tryExecute(call, signal);
    this.checkArtifacts(result, call.worker.name);
    return result;
  }

  /**
   * One attempt: tries through the worker's breaker, retried by p-retry with its own backoff
   * (RETRY_BASE_DELAY_MS doubling to RETRY_MAX_DELAY_MS, randomized), only for retryable errors,
   * a `Retry-After` honoured on top, all bounded by the task's deadline: `signal` aborts the
   * running try and the wait on cancel, shutdown or deadline.
   */
  async execute(call: ExecuteCall): Promise<ExecuteOutcome> {
    const { worker, policy } = call;
    const backoff = { baseMs: this.settings.retryBaseDelayMs, maxMs: this.settings.retryMaxDelayMs };
    const left = Math.max(0, call.deadline - Date.now());
    const deadline = new AbortController();
    // setTimeout takes at most 2^31-1 ms (24.8 days); a deadline further off is never reached anyway.
    const deadlineTimer = setTimeout(() => deadline.abort(deadlineError(call)), Math.min(left, 2 ** 31 - 1));
    const signal = AbortSignal.any([call.signal, deadline.signal]);
    // The tries that started: p-retry counts one more when the signal stops it before a try.
    let tries = 0;
    try {
      const result = await pRetry(
        (tryNumber) => {
          tries = tryNumber;
          // A span per try, a child of the caller's (the attempt's): its traceparent goes to the worker.
          const attributes = {
            [ATTR.taskId]: call.request.taskId,
            [ATTR.attempt]: call.request.attempt,
            [ATTR.worker]: worker.name,
            [ATTR.try]: tryNumber,
          };
          return inSpan(SPAN.try, { kind: SpanKind.CLIENT, attributes, parent: call.trace }, () =>
            this.breakers.run(worker.id, worker.name, call.request.taskId, () => this.tryOn(call, signal)),
          );
        },
        {
          ...retryBackoff(backoff),
          retries: policy.tries - 1,
          maxRetryTime: left,
          signal,
          onFailedAttempt: async ({ error, attemptNumber, retriesLeft, retriesConsumed }) => {
            const err = classifyCallError(error, { workerName: worker.name, signal });
            // Stopped before the try began, or canceled: nothing to report, no retry.
            if (attemptNumber > tries || call.signal.aborted) throw err;
            const least = retriesLeft > 0 && err.retryable ? leastBackoffMs(retriesConsumed + 1, backoff) : null;
            const wait = least === null ? null : Math.max(least, err.retryAfterMs ?? 0);
            const fits = wait !== null && wait < call.deadline - Date.now();
            call.onTryFailed?.(attemptNumber, err, fits ? wait : null);
            if (wait !== null && !fits) {
              throw new WorkerCallError(
                err.kind,
                `${err.message} Not retried: the next try could not start before ${deadlineName(call)} passes.`,
                { status: err.status, retryable: false, countsAgainstWorker: err.countsAgainstWorker },
              );
            }
            // Retry-After: what the worker asked for beyond the least of p-retry's own delay, which follows.
            if (fits && err.retryAfterMs !== undefined && least !== null && err.retryAfterMs > least) {
              await abortableDelay(err.retryAfterMs - least, signal);
            }
          },
          shouldRetry: ({ error }) => error instanceof WorkerCallError && error.retryable,
        },
      );
      return { result, tries };
    } catch (err) {
      throw classifyCallError(err, { workerName: worker.name, signal });
    } finally {
      clearTimeout(deadlineTimer);
    }
  }

  /** One try. Whatever it throws is classified here, so the breaker around it sees what it counts. */
  private async tryExecute(call: ExecuteCall, signal: AbortSignal): Promise<ExecuteResult> {
    const { worker, request, policy } = call;
    let base: URL;
    try {
      base = assertAllowedWorkerUrl(worker.url, this.settings.allowedHosts);
    } catch (err) {
      throw notAllowed(err);
    }
    const ctrl = new AbortController();
    const onOuterAbort = () => ctrl.abort(signal.reason);
    if (signal.aborted) throw classifyCallError(signal.reason, { workerName: worker.name, signal });
    signal.addEventListener("abort", onOuterAbort, { once: true });
    let phase: CallPhase = "reach";
    let idle: NodeJS.Timeout | undefined;
    const armIdle = () => {
      clearTimeout(idle);
      idle = setTimeout(() => ctrl.abort(idleTimeoutError(call, phase)), policy.tryTimeoutMs);
    };
    armIdle();
    // Set once the body has been read to its end: the connection is then clean and goes back to the pool.
    let drained = false;
    const url = workerEndpoint(base, "execute");
    const span = trace.getActiveSpan();
    span?.setAttributes({ [ATTR_HTTP_REQUEST_METHOD]: "POST", [ATTR_URL_FULL]: url });
    try {
      const res = await http(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: `${NDJSON_CONTENT_TYPE}, application/json`,
          [IDEMPOTENCY_HEADER]: idempotencyKey(request.taskId, request.attempt),
          ...traceHeaders(),
          ...this.auth(worker),
        },
        body: JSON.stringify(request),
        signal: ctrl.signal,
      });
      span?.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, res.statusCode);
      phase = "read";
      armIdle();
      if (!ok(res)) throw await httpError(res, worker.name);
      const type = header(res, "content-type") ?? "";
      const result = type.includes(NDJSON_CONTENT_TYPE)
        ? await readStream(res, worker.name, this.settings.maxResponseBytes, armIdle, call.onLine)
        : await this.readJsonAnswer(res, worker.name, armIdle);
      if (!type.includes(NDJSON_CONTENT_TYPE)) drained = true;
      this.checkArtifacts(result, worker.name);
      return result;
    } catch (err) {
      throw classifyCallError(err, { workerName: worker.name, phase, signal: ctrl.signal });
    } finally {
      clearTimeout(idle);
      signal.removeEventListener("abort", onOuterAbort);
      // Drops the connection if the body was not read to the end (a timeout, a stream, a protocol
      // error). Not after a drained body: an abort builds a DOMException with its stack on every call.
      if (!drained && !ctrl.signal.aborted) ctrl.abort();
    }
  }

  /** A plain JSON answer, read no further than WORKER_MAX_RESPONSE_BYTES. */
  private async readJsonAnswer(res: HttpResponse, workerName: string, onActivity: () => void): Promise<ExecuteResult> {
    const limit = this.settings.maxResponseBytes;
    const over = (bytes: string) =>
      tooLarge(
        `Worker ${workerName}'s answer exceeded WORKER_MAX_RESPONSE_BYTES (${formatBytes(limit)}): ${bytes}; the request was aborted and the rest not read.`,
      );
    const declared = declaredLength(res);
    if (declared !== null && declared > limit) {
      res.body.destroy();
      throw over(`it announced ${formatBytes(declared)}`);
    }
    try {
      const { buffer } = await readCapped(res.body, limit, { onChunk: onActivity });
      return parseResult(buffer.toString("utf8"), workerName);
    } catch (err) {
      if (err instanceof OverCap) throw over(`more than ${formatBytes(limit)} arrived`);
      throw err;
    }
  }

  /** What one attempt may store: WORKER_MAX_ARTIFACTS artifacts, WORKER_MAX_ARTIFACT_BYTES of content and diffs. */
  private checkArtifacts(result: ExecuteResult, workerName: string): void {
    const { maxArtifacts, maxArtifactBytes } = this.settings;
    if (result.artifacts.length > maxArtifacts) {
      throw tooLarge(
        `Worker ${workerName}'s result has ${result.artifacts.length} artifacts, over WORKER_MAX_ARTIFACTS (${maxArtifacts}).`,
      );
    }
    let total = 0;
    for (const a of result.artifacts) {
      total += (a.content ? Buffer.byteLength(a.content) : 0) + (a.diff ? Buffer.byteLength(a.diff) : 0);
    }
    if (total > maxArtifactBytes) {
      throw tooLarge(
        `Worker ${workerName}'s artifacts total ${formatBytes(total)} of content and diffs, over WORKER_MAX_ARTIFACT_BYTES (${formatBytes(maxArtifactBytes)}).`,
      );
    }
  }

  /** Tells the worker to stop an attempt. Confirmed only by a protocol answer within the cancel timeout. */
  async cancel(worker: WorkerTarget, body: CancelRequest): Promise<{ confirmed: boolean; detail: string }> {
    if (worker.protocol === "a2a") return this.a2a.cancel(worker, body);
    const timeout = AbortSignal.timeout(this.settings.cancelTimeoutMs);
    try {
      const base = assertAllowedWorkerUrl(worker.url, this.settings.allowedHosts);
      const res = await http(workerEndpoint(base, "cancel"), {
        method: "POST",
        headers: {
          "content-type": "application/json",
          // The caller's trace (the attempt's, or the task's cancel): the worker's stop joins it.
          ...traceHeaders(),
          ...this.auth(worker),
        },
        body: JSON.stringify(body),
        signal: timeout,
      });
      const { buffer, truncated } = await readCapped(res.body, SMALL_BODY_BYTES, { truncate: true });
      const text = buffer.toString("utf8");
      if (!ok(res))
        return { confirmed: false, detail: `worker answered ${res.statusCode}: ${text.slice(0, MAX_ERROR_BODY)}` };
      if (truncated) return { confirmed: false, detail: `worker's answer is over ${formatBytes(SMALL_BODY_BYTES)}` };
      const parsed = cancelResponseSchema.safeParse(safeJson(text));
      if (!parsed.success)
        return { confirmed: false, detail: `worker's answer is not a cancel response: ${text.slice(0, 200)}` };
      return { confirmed: true, detail: parsed.data.status };
    } catch (err) {
      if (err instanceof DomainError) return { confirmed: false, detail: err.message };
      const detail = timeout.aborted
        ? `no answer within ${this.settings.cancelTimeoutMs} ms`
        : `unreachable: ${(err as Error).message}`;
      return { confirmed: false, detail };
    }
  }

  async health(worker: WorkerTarget): Promise<WorkerHealth> {
    let base: URL;
    try {
      base = assertAllowedWorkerUrl(worker.url, this.settings.allowedHosts);
    } catch (err) {
      throw notAllowed(err);
    }
    let res: HttpResponse;
    let text: string;
    let truncated: boolean;
    const timeout = AbortSignal.timeout(this.settings.healthTimeoutMs);
    try {
      res = await http(workerEndpoint(base, "health"), { headers: this.auth(worker), signal: timeout });
      const read = await readCapped(res.body, SMALL_BODY_BYTES, { truncate: true });
      text = read.buffer.toString("utf8");
      truncated = read.truncated;
    } catch (err) {
      if (timeout.aborted) {
        throw new WorkerCallError("timeout", `Health check got no answer within ${this.settings.healthTimeoutMs} ms.`, {
          retryable: true,
          countsAgainstWorker: true,
        });
      }
      throw classifyCallError(err, { workerName: worker.name });
    }
    if (!ok(res)) throw httpErrorOf(res, text, worker.name, truncated);
    if (truncated) {
      throw tooLarge(
        `Worker ${worker.name}'s /health answer is over ${formatBytes(SMALL_BODY_BYTES)}; it was not read further.`,
      );
    }
    const parsed = workerHealthSchema.safeParse(safeJson(text));
    if (!parsed.success) {
      throw new WorkerCallError("protocol", `Worker ${worker.name}'s /health answer: ${zodMessage(parsed.error)}`, {
        retryable: false,
        countsAgainstWorker: true,
      });
    }
    return parsed.data;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** An error answer is read for its message only: its first 64 KiB at most, the rest never. */
async function httpError(res: HttpResponse, workerName: string): Promise<WorkerCallError> {
  const read = await readCapped(res.body, SMALL_BODY_BYTES, { truncate: true }).catch(() => null);
  return httpErrorOf(res, read?.buffer.toString("utf8") ?? "", workerName, read?.truncated ?? false);
}

function httpErrorOf(res: HttpResponse, text: string, workerName: string, truncated = false): WorkerCallError {
  const body = toStorableText(text.slice(0, MAX_ERROR_BODY).trim());
  const s = res.statusCode;
  const retryable = s === 408 || s === 429 || s >= 500;
  const cut = truncated
    ? ` … (body over ${formatBytes(SMALL_BODY_BYTES)}, not read further)`
    : text.length > MAX_ERROR_BODY
      ? " …"
      : "";
  const message = `Worker ${workerName} answered HTTP ${s}${body ? `: ${body}${cut}` : ""}${retryable ? "" : " (not retried)"}`;
  return new WorkerCallError("http", message, {
    status: s,
    retryable,
    countsAgainstWorker: s >= 500,
    retryAfterMs: retryable ? parseRetryAfter(header(res, "retry-after")) : undefined,
  });
}

function protocolError(message: string): WorkerCallError {
  return new WorkerCallError("protocol", message, { retryable: false, countsAgainstWorker: true });
}

function parseResult(text: string, workerName: string): ExecuteResult {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw protocolError(
      `Worker ${workerName} answered with malformed JSON (${(err as Error).message}): ${toStorableText(text.slice(0, 200))}`,
    );
  }
  return checkedResult(json, workerName);
}

/** A result that matches protocol v1; a text problem (NUL, lone surrogate) gets a message of its own. */
function checkedResult(json: unknown, workerName: string, prefix: readonly PropertyKey[] = []): ExecuteResult {
  const parsed = executeResultSchema.safeParse(json);
  if (parsed.success) return parsed.data;
  const text = parsed.error.issues.find((i) => i.code === "custom" && i.params?.text);
  if (text) {
    const what = text.message.includes("NUL") ? "a NUL character" : "a lone surrogate";
    throw protocolError(
      `Worker ${workerName}'s result contains ${what} in ${fieldPath([...prefix, ...text.path])}: results must be valid text (${text.message}).`,
    );
  }
  throw protocolError(`Worker ${workerName}'s result does not match protocol v1: ${zodMessage(parsed.error)}`);
}

/**
 * Reads an NDJSON answer line by line, each line no longer than `maxLine` bytes (WORKER_MAX_RESPONSE_BYTES):
 * lines are split on the newline byte, which never occurs inside a multi-byte UTF-8 character.
 */
async function readStream(
  res: HttpResponse,
  workerName: string,
  maxLine: number,
  onActivity: () => void,
  onLine?: (line: ProgressLine) => void,
): Promise<ExecuteResult> {
  let parts: Buffer[] = [];
  let partBytes = 0;
  let lineNo = 0;
  const handle = (bytes: Buffer): ExecuteResult | undefined => {
    const line = bytes.toString("utf8").trim();
    if (!line) return undefined;
    lineNo++;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch (err) {
      throw protocolError(
        `Worker ${workerName} sent stream line ${lineNo} that is not JSON (${(err as Error).message}): ${toStorableText(line.slice(0, 200))}`,
      );
    }
    if ((json as { type?: unknown } | null)?.type === "result") {
      return checkedResult((json as { result?: unknown }).result, workerName);
    }
    const parsed = streamLineSchema.safeParse(json);
    if (!parsed.success) {
      throw protocolError(
        `Worker ${workerName}'s stream line ${lineNo} does not match protocol v1: ${zodMessage(parsed.error)}`,
      );
    }
    if (parsed.data.type === "result") return parsed.data.result;
    // Relayed script output, shown and not judged or signed: a NUL or a lone surrogate (a script's
    // binary output) becomes U+FFFD rather than failing the attempt or the event batch it is written in.
    if (parsed.data.type === "log") onLine?.({ ...parsed.data, line: toStorableText(parsed.data.line) });
    // A heartbeat only says the worker lives: reading it restarted the idle timer (onActivity).
    else if (parsed.data.type === "progress") {
      const { message } = parsed.data;
      onLine?.(message === undefined ? parsed.data : { ...parsed.data, message: toStorableText(message) });
    }
    return undefined;
  };
  const overLine = () => {
    res.body.destroy();
    return tooLarge(
      `Worker ${workerName} sent a stream line longer than WORKER_MAX_RESPONSE_BYTES (${formatBytes(maxLine)}); the request was aborted and the rest not read.`,
    );
  };
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    onActivity();
    let start = 0;
    let nl = chunk.indexOf(10);
    while (nl >= 0) {
      if (partBytes + (nl - start) > maxLine) throw overLine();
      parts.push(chunk.subarray(start, nl));
      const result = handle(parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts));
      parts = [];
      partBytes = 0;
      if (result) return result;
      start = nl + 1;
      nl = chunk.indexOf(10, start);
    }
    if (start < chunk.length) {
      partBytes += chunk.length - start;
      if (partBytes > maxLine) throw overLine();
      parts.push(chunk.subarray(start));
    }
  }
  const result = handle(Buffer.concat(parts));
  if (result) return result;
  throw new WorkerCallError("network", `Worker ${workerName}'s stream ended before its result line.`, {
    retryable: true,
    countsAgainstWorker: true,
  });
}

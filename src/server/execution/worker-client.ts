import pRetry, { AbortError } from "p-retry";
import { type Dispatcher, request } from "undici";
import type { z } from "zod";
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
import type { TierPolicy } from "../config.js";
import { DomainError } from "../errors.js";
import type { SecretBox } from "../keystore/secrets.js";
import { assertAllowedWorkerUrl, workerEndpoint } from "../workers/allowlist.js";
import type { BreakerRegistry } from "../workers/breakers.js";
import { openWorkerToken } from "../workers/token.js";
import { fullJitterDelay, parseRetryAfter, sleep } from "./backoff.js";
import { WorkerCallError } from "./errors.js";

export interface WorkerTarget {
  id: string;
  name: string;
  url: string;
  /** The bearer token as stored (sealed; one stored in clear by an older version is taken as is), or null. */
  token: string | null;
}

export interface ClientSettings {
  allowedHosts: readonly string[];
  retryBaseDelayMs: number;
  retryMaxDelayMs: number;
  cancelTimeoutMs: number;
  healthTimeoutMs: number;
}

export type ProgressLine = Exclude<StreamLine, { type: "result" }>;

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
}

export interface ExecuteOutcome {
  result: ExecuteResult;
  tries: number;
}

const MAX_ERROR_BODY = 500;
const MAX_LINE = 4 * 1024 * 1024;

function zodMessage(err: z.ZodError): string {
  return err.issues
    .slice(0, 5)
    .map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`)
    .join("; ");
}

function notAllowed(err: unknown): WorkerCallError {
  return new WorkerCallError("not_allowed", (err as Error).message, { retryable: false, countsAgainstWorker: false });
}

/** Turns whatever a try threw into a classified error. */
function classify(err: unknown, workerName: string, signal: AbortSignal): WorkerCallError {
  if (err instanceof WorkerCallError) return err;
  if (signal.aborted && signal.reason instanceof WorkerCallError) return signal.reason;
  const e = err as Error & { code?: string; cause?: { code?: string; message?: string } };
  const detail = e.cause?.code ?? e.cause?.message ?? (e.code?.startsWith("UND_ERR") ? e.message : e.code) ?? e.message;
  return new WorkerCallError("network", `Could not reach worker ${workerName}: ${detail}`, {
    retryable: true,
    countsAgainstWorker: true,
  });
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

/**
 * Calls workers over protocol v1: retries with exponential backoff and full jitter (p-retry), every
 * try through the worker's circuit breaker (cockatiel), NDJSON streamed line by line, results
 * checked against the protocol schema.
 */
export class WorkerClient {
  /** Opened tokens by their sealed form, so each worker's token is decrypted once rather than per call. */
  private readonly opened = new Map<string, string>();

  constructor(
    private readonly settings: ClientSettings,
    private readonly breakers: BreakerRegistry,
    private readonly box: SecretBox,
  ) {}

  /** The Authorization header for a worker: the only place its token is opened. */
  private auth(worker: WorkerTarget): Record<string, string> {
    if (!worker.token) return {};
    let token = this.opened.get(worker.token);
    if (token === undefined) {
      token = openWorkerToken(this.box, worker.token) as string;
      // Bounded: a worker's token changes rarely, but every change leaves a stale entry behind.
      if (this.opened.size >= 1000) this.opened.clear();
      this.opened.set(worker.token, token);
    }
    return { authorization: `Bearer ${token}` };
  }

  async execute(call: ExecuteCall): Promise<ExecuteOutcome> {
    const { worker, policy, signal, deadline } = call;
    let tries = 0;
    let nextDelay = 0;
    const result = await pRetry(
      async (tryNumber) => {
        tries = tryNumber;
        if (signal.aborted) throw new AbortError(signal.reason as Error);
        if (Date.now() >= deadline) {
          throw new AbortError(
            new WorkerCallError("deadline", `The attempt's deadline passed after ${tryNumber - 1} tries.`, {
              retryable: false,
              countsAgainstWorker: false,
            }),
          );
        }
        try {
          return await this.breakers.run(worker.id, worker.name, call.request.taskId, () => this.tryExecute(call));
        } catch (raw) {
          const err = classify(raw, worker.name, signal);
          if (signal.aborted) throw new AbortError(signal.reason as Error);
          const last = tryNumber >= policy.tries;
          const delay = !err.retryable || last ? null : this.delayFor(err, tryNumber, deadline);
          call.onTryFailed?.(tryNumber, err, delay);
          if (delay === null) throw new AbortError(err);
          nextDelay = delay;
          throw err;
        }
      },
      {
        retries: policy.tries - 1,
        // Our own delay (full jitter or Retry-After) is taken in onFailedAttempt; p-retry's is zero.
        minTimeout: 0,
        maxTimeout: 0,
        factor: 1,
        signal,
        onFailedAttempt: async () => {
          await sleep(nextDelay, signal);
        },
        shouldRetry: ({ error }) => error instanceof WorkerCallError && error.retryable,
      },
    ).catch((err: unknown) => {
      throw classify(err, worker.name, signal);
    });
    return { result, tries };
  }

  private delayFor(err: WorkerCallError, tryNumber: number, deadline: number): number {
    const wanted =
      err.retryAfterMs ?? fullJitterDelay(tryNumber, this.settings.retryBaseDelayMs, this.settings.retryMaxDelayMs);
    return Math.max(0, Math.min(wanted, deadline - Date.now()));
  }

  private async tryExecute(call: ExecuteCall): Promise<ExecuteResult> {
    const { worker, request, policy } = call;
    let base: URL;
    try {
      base = assertAllowedWorkerUrl(worker.url, this.settings.allowedHosts);
    } catch (err) {
      throw notAllowed(err);
    }
    const ctrl = new AbortController();
    const onOuterAbort = () => ctrl.abort(call.signal.reason);
    call.signal.addEventListener("abort", onOuterAbort, { once: true });
    let idle: NodeJS.Timeout | undefined;
    const armIdle = () => {
      clearTimeout(idle);
      idle = setTimeout(
        () =>
          ctrl.abort(
            new WorkerCallError(
              "timeout",
              `Worker ${worker.name} said nothing for ${policy.tryTimeoutMs} ms (try timeout for risk tier ${request.spec.riskTier}).`,
              { retryable: true, countsAgainstWorker: true },
            ),
          ),
        policy.tryTimeoutMs,
      );
    };
    const deadlineTimer = setTimeout(
      () =>
        ctrl.abort(
          new WorkerCallError("deadline", `The attempt ran past its deadline (${request.deadline}).`, {
            retryable: false,
            countsAgainstWorker: false,
          }),
        ),
      Math.max(0, call.deadline - Date.now()),
    );
    armIdle();
    // Set once the body has been read to its end: the connection is then clean and goes back to the pool.
    let drained = false;
    try {
      const res = await http(workerEndpoint(base, "execute"), {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: `${NDJSON_CONTENT_TYPE}, application/json`,
          [IDEMPOTENCY_HEADER]: idempotencyKey(request.taskId, request.attempt),
          ...this.auth(worker),
        },
        body: JSON.stringify(request),
        signal: ctrl.signal,
      });
      armIdle();
      if (!ok(res)) throw await httpError(res, worker.name);
      const type = header(res, "content-type") ?? "";
      if (type.includes(NDJSON_CONTENT_TYPE)) return await readStream(res, worker.name, armIdle, call.onLine);
      const text = await res.body.text();
      drained = true;
      return parseResult(text, worker.name);
    } catch (err) {
      if (ctrl.signal.aborted && ctrl.signal.reason instanceof WorkerCallError) throw ctrl.signal.reason;
      throw err;
    } finally {
      clearTimeout(idle);
      clearTimeout(deadlineTimer);
      call.signal.removeEventListener("abort", onOuterAbort);
      // Drops the connection if the body was not read to the end (a timeout, a stream, a protocol
      // error). Not after a drained body: an abort builds a DOMException with its stack on every call.
      if (!drained && !ctrl.signal.aborted) ctrl.abort();
    }
  }

  /** Tells the worker to stop an attempt. Confirmed only by a protocol answer within the cancel timeout. */
  async cancel(worker: WorkerTarget, body: CancelRequest): Promise<{ confirmed: boolean; detail: string }> {
    const timeout = AbortSignal.timeout(this.settings.cancelTimeoutMs);
    try {
      const base = assertAllowedWorkerUrl(worker.url, this.settings.allowedHosts);
      const res = await http(workerEndpoint(base, "cancel"), {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...this.auth(worker),
        },
        body: JSON.stringify(body),
        signal: timeout,
      });
      const text = await res.body.text();
      if (!ok(res))
        return { confirmed: false, detail: `worker answered ${res.statusCode}: ${text.slice(0, MAX_ERROR_BODY)}` };
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
    const timeout = AbortSignal.timeout(this.settings.healthTimeoutMs);
    try {
      res = await http(workerEndpoint(base, "health"), { headers: this.auth(worker), signal: timeout });
      text = await res.body.text();
    } catch (err) {
      if (timeout.aborted) {
        throw new WorkerCallError("timeout", `Health check got no answer within ${this.settings.healthTimeoutMs} ms.`, {
          retryable: true,
          countsAgainstWorker: true,
        });
      }
      throw classify(err, worker.name, new AbortController().signal);
    }
    if (!ok(res)) throw httpErrorOf(res, text, worker.name);
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

async function httpError(res: HttpResponse, workerName: string): Promise<WorkerCallError> {
  return httpErrorOf(res, await res.body.text().catch(() => ""), workerName);
}

function httpErrorOf(res: HttpResponse, text: string, workerName: string): WorkerCallError {
  const body = text.slice(0, MAX_ERROR_BODY).trim();
  const s = res.statusCode;
  const retryable = s === 408 || s === 429 || s >= 500;
  const message = `Worker ${workerName} answered HTTP ${s}${body ? `: ${body}` : ""}${retryable ? "" : " (not retried)"}`;
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
      `Worker ${workerName} answered with malformed JSON (${(err as Error).message}): ${text.slice(0, 200)}`,
    );
  }
  const parsed = executeResultSchema.safeParse(json);
  if (!parsed.success) {
    throw protocolError(`Worker ${workerName}'s result does not match protocol v1: ${zodMessage(parsed.error)}`);
  }
  return parsed.data;
}

async function readStream(
  res: HttpResponse,
  workerName: string,
  onActivity: () => void,
  onLine?: (line: ProgressLine) => void,
): Promise<ExecuteResult> {
  const decoder = new TextDecoder();
  let buffered = "";
  let lineNo = 0;
  const handle = (raw: string): ExecuteResult | undefined => {
    const line = raw.trim();
    if (!line) return undefined;
    lineNo++;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch (err) {
      throw protocolError(
        `Worker ${workerName} sent stream line ${lineNo} that is not JSON (${(err as Error).message}): ${line.slice(0, 200)}`,
      );
    }
    const parsed = streamLineSchema.safeParse(json);
    if (!parsed.success) {
      throw protocolError(
        `Worker ${workerName}'s stream line ${lineNo} does not match protocol v1: ${zodMessage(parsed.error)}`,
      );
    }
    if (parsed.data.type === "result") return parsed.data.result;
    onLine?.(parsed.data);
    return undefined;
  };
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    onActivity();
    buffered += decoder.decode(chunk, { stream: true });
    if (buffered.length > MAX_LINE && !buffered.includes("\n")) {
      throw protocolError(`Worker ${workerName} sent a stream line longer than ${MAX_LINE} bytes.`);
    }
    let nl = buffered.indexOf("\n");
    while (nl >= 0) {
      const result = handle(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
      if (result) return result;
      nl = buffered.indexOf("\n");
    }
  }
  buffered += decoder.decode();
  const result = handle(buffered);
  if (result) return result;
  throw new WorkerCallError("network", `Worker ${workerName}'s stream ended before its result line.`, {
    retryable: true,
    countsAgainstWorker: true,
  });
}

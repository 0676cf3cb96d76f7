/** Why a call to a worker failed, and what the retry policy and the breaker make of it. */
export type WorkerErrorKind =
  | "network"
  | "timeout"
  | "http"
  | "protocol"
  /** An answer over a size cap (WORKER_MAX_RESPONSE_BYTES and the like): read no further. */
  | "too_large"
  | "breaker_open"
  | "not_allowed"
  | "canceled"
  /** The task's deadline (budget.maxDurationSec or the tier's) passed: not the worker's fault. */
  | "deadline"
  /** A fault of the agency's own while calling the worker: not the worker's. */
  | "internal";

export class WorkerCallError extends Error {
  readonly kind: WorkerErrorKind;
  readonly status: number | undefined;
  /** Failures to reach or read the worker, idle timeouts, 408, 429 and 5xx: worth another try. */
  readonly retryable: boolean;
  /** Counts toward opening the worker's circuit breaker. */
  readonly countsAgainstWorker: boolean;
  /** From a `Retry-After` header. */
  readonly retryAfterMs: number | undefined;

  constructor(
    kind: WorkerErrorKind,
    message: string,
    opts: { status?: number; retryable: boolean; countsAgainstWorker: boolean; retryAfterMs?: number },
  ) {
    super(message);
    this.name = "WorkerCallError";
    this.kind = kind;
    this.status = opts.status;
    this.retryable = opts.retryable;
    this.countsAgainstWorker = opts.countsAgainstWorker;
    this.retryAfterMs = opts.retryAfterMs;
  }
}

/** What a system or undici error code says happened on the way to a worker or back. */
const NETWORK_CODES: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  EPIPE: "connection broken",
  ECONNABORTED: "connection aborted",
  ETIMEDOUT: "connection timed out",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  EHOSTDOWN: "host down",
  ENOTFOUND: "DNS lookup failed (no such host)",
  EAI_AGAIN: "DNS lookup failed (temporary)",
  EAI_FAIL: "DNS lookup failed",
  UND_ERR_SOCKET: "connection closed",
  UND_ERR_CONNECT_TIMEOUT: "connect timed out",
  UND_ERR_HEADERS_TIMEOUT: "no answer in time",
  UND_ERR_BODY_TIMEOUT: "answer stalled",
  UND_ERR_CLOSED: "connection closed",
  UND_ERR_DESTROYED: "connection destroyed",
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: "answer shorter or longer than announced",
  UND_ERR_REQ_CONTENT_LENGTH_MISMATCH: "request body length mismatch",
  UND_ERR_INFO: "invalid answer",
  HPE_INVALID_CONSTANT: "not an HTTP answer",
};

const TLS_CODE =
  /^(ERR_SSL_|ERR_TLS_|EPROTO$|CERT_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|UNABLE_TO_)/;

type CodedError = Error & { code?: unknown; cause?: unknown };

/** The first error code on the error or its causes (undici and Node put it on one or the other). */
function codeOf(err: unknown): string | undefined {
  for (let e = err as CodedError | undefined, depth = 0; e && depth < 4; e = e.cause as CodedError, depth++) {
    if (typeof e.code === "string" && e.code && e.code !== "UND_ERR") return e.code;
  }
  return undefined;
}

/** Where in a try a raw error happened: reaching the worker (up to its answer's headers) or reading the answer. */
export type CallPhase = "reach" | "read";

/**
 * Turns whatever a call to a worker threw into a classified error, before the worker's circuit
 * breaker sees it: every failure to reach or read the worker (refused, reset, closed mid-body,
 * DNS, TLS, a timeout) is retryable and counts against the worker. An abort takes its reason (a
 * cancel, a shutdown, the task's deadline: none of them the worker's fault). A bug of ours (a
 * code-less TypeError and the like) neither counts against the worker nor is retried.
 */
export function classifyCallError(
  err: unknown,
  ctx: { workerName: string; phase?: CallPhase; signal?: AbortSignal },
): WorkerCallError {
  if (err instanceof WorkerCallError) return err;
  const { signal, workerName } = ctx;
  if (signal?.aborted) {
    if (signal.reason instanceof WorkerCallError) return signal.reason;
    return new WorkerCallError("canceled", `The call to worker ${workerName} was aborted: ${String(signal.reason)}`, {
      retryable: false,
      countsAgainstWorker: false,
    });
  }
  const e = err as CodedError;
  const code = codeOf(err);
  if (!code && (e instanceof TypeError || e instanceof RangeError || e instanceof ReferenceError)) {
    return new WorkerCallError("internal", `The agency failed while calling worker ${workerName}: ${e.message}`, {
      retryable: false,
      countsAgainstWorker: false,
    });
  }
  const what = code
    ? TLS_CODE.test(code)
      ? `TLS failed (${code}: ${firstLine(e.message)})`
      : `${NETWORK_CODES[code] ?? firstLine(e.message)} (${code})`
    : firstLine(String(e?.message ?? err));
  const message =
    ctx.phase === "read"
      ? `Worker ${workerName}'s answer broke off while it was read: ${what}.`
      : `Could not reach worker ${workerName}: ${what}.`;
  return new WorkerCallError("network", message, { retryable: true, countsAgainstWorker: true });
}

function firstLine(s: string): string {
  return (s.split("\n")[0] ?? "").slice(0, 300);
}

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
  | "deadline";

export class WorkerCallError extends Error {
  readonly kind: WorkerErrorKind;
  readonly status: number | undefined;
  /** Network errors, timeouts, 408, 429 and 5xx: worth another try. */
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

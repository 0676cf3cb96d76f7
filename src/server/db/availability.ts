import type { Logger } from "../logger.js";

/** Socket-level failures: the database server cannot be reached or the connection broke. */
const SOCKET_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "EPIPE",
]);
/** Prisma's codes for the same: can't reach, timed out, connection closed (with a driver adapter, from its error kinds). */
const PRISMA_CODES = new Set(["P1001", "P1002", "P1008", "P1017"]);
const ADAPTER_KINDS = new Set(["DatabaseNotReachable", "ConnectionClosed", "SocketTimeout"]);
/** SQLSTATE: class 08 (connection exception), and the server shutting down or not accepting connections yet. */
const SQLSTATE = /^(08...|57P01|57P02|57P03)$/;
/** node-postgres says these in plain errors without a code. */
const PG_MESSAGES = [
  "connection terminated",
  "client has encountered a connection error and is not queryable",
  "client was closed and is not queryable",
  "timeout exceeded when trying to connect",
  "connection timeout",
  "the database system is shutting down",
  "the database system is starting up",
  "server has closed the connection",
  "can't reach database server",
  // The LISTEN connection's own words when its socket closed (lib/pg-listener.ts).
  "the listen connection ended",
];

/**
 * Whether `err` says the database could not be reached (refused, reset, closed, timed out, shutting
 * down), as opposed to a statement that failed. Looks through causes and Prisma's wrapping of a
 * driver adapter's error.
 */
export function isUnreachable(err: unknown): boolean {
  const seen = new Set<unknown>();
  const queue: unknown[] = [err];
  while (queue.length) {
    const e = queue.shift();
    if (!e || typeof e !== "object" || seen.has(e)) continue;
    seen.add(e);
    const o = e as {
      code?: unknown;
      kind?: unknown;
      message?: unknown;
      cause?: unknown;
      errors?: unknown;
      meta?: { driverAdapterError?: unknown };
    };
    if (typeof o.code === "string" && (SOCKET_CODES.has(o.code) || PRISMA_CODES.has(o.code) || SQLSTATE.test(o.code))) {
      return true;
    }
    if (typeof o.kind === "string" && ADAPTER_KINDS.has(o.kind)) return true;
    if (typeof o.message === "string") {
      const m = o.message.toLowerCase();
      if (PG_MESSAGES.some((p) => m.includes(p))) return true;
    }
    queue.push(o.cause, o.meta?.driverAdapterError);
    // AggregateError (a connect to every address of a host failed).
    if (Array.isArray(o.errors)) queue.push(...o.errors);
  }
  return false;
}

/**
 * What a lost connection leaves behind in a transaction that was open on it (Prisma's "Transaction API
 * error: Transaction already closed", P2028): taken as the outage's doing only while the database is
 * known to be unreachable.
 */
export function isOutageSymptom(err: unknown): boolean {
  for (
    let e = err as { code?: unknown; message?: unknown; cause?: unknown } | null, depth = 0;
    e && depth < 5;
    depth++
  ) {
    if (e.code === "P2028") return true;
    if (typeof e.message === "string" && /transaction already closed|transaction api error/i.test(e.message)) {
      return true;
    }
    e = e.cause as typeof e;
  }
  return false;
}

const summarize = (err: unknown): { error: string; code?: string } => {
  const o = err as { message?: unknown; code?: unknown } | null;
  const error = typeof o?.message === "string" && o.message ? o.message : String(err);
  return typeof o?.code === "string" ? { error: error.slice(0, 500), code: o.code } : { error: error.slice(0, 500) };
};

/**
 * Knows whether the database is reachable, from what the process's own database calls report: a
 * connectivity failure makes it unreachable (logged once), the next success reachable again
 * (logged once). Callers that poll ask `failed(err)` whether an error was this, and then log nothing
 * of their own: one outage is two log lines, not one stack per failed poll.
 */
export class DbAvailability {
  private log: Logger | null = null;
  private down = false;
  private downSince = 0;
  private lastSuccessAt = 0;
  private failuresWhileDown = 0;
  private waiters = new Set<() => void>();

  /** Where the two lines go (the process's logger; none until attached). */
  attach(log: Logger): void {
    this.log = log;
  }

  /** A warning through the attached logger (for callers that have none of their own). */
  warn(fields: Record<string, unknown>, msg: string): void {
    this.log?.warn(fields, msg);
  }

  get reachable(): boolean {
    return !this.down;
  }

  /**
   * Reports a failed database call. True when it was a connectivity failure: the state is now (or
   * already was) unreachable and the caller should not log it again. `startedAt`: when the call
   * began; a call that began before the last success cannot by itself declare an outage (it may
   * have held a connection that broke before the database came back).
   */
  failed(err: unknown, startedAt = Date.now(), source?: string): boolean {
    if (!this.isConnectivity(err)) return false;
    if (this.down) {
      this.failuresWhileDown++;
      this.log?.debug({ source, ...summarize(err) }, "a database call failed while the database is unreachable");
      return true;
    }
    if (startedAt < this.lastSuccessAt) return true;
    this.down = true;
    this.downSince = Date.now();
    this.failuresWhileDown = 1;
    this.log?.error(
      { database: "unreachable", source, ...summarize(err) },
      "the database is unreachable: finished results are held in memory and stored when it is back; polling continues quietly",
    );
    return true;
  }

  /** A connectivity failure, or (while unreachable) what one leaves behind. */
  isConnectivity(err: unknown): boolean {
    return isUnreachable(err) || (this.down && isOutageSymptom(err));
  }

  /** Reports a database call that succeeded. */
  succeeded(): void {
    this.lastSuccessAt = Date.now();
    if (!this.down) return;
    this.down = false;
    this.log?.info(
      { database: "reachable", downMs: Date.now() - this.downSince, failedCalls: this.failuresWhileDown },
      "the database is reachable again",
    );
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const w of waiters) w();
  }

  /** Resolves at once while reachable, else when a call next succeeds (or after `maxWaitMs`, to try again). */
  whenReachable(maxWaitMs: number): Promise<void> {
    if (!this.down) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, maxWaitMs);
      timer.unref();
      this.waiters.add(done);
    });
  }

  /**
   * A pino `logMethod` hook: a line whose `err` is a connectivity failure feeds this state and keeps
   * the error's message and code but not its stack (the outage has its own line).
   */
  logHook(): (this: Logger, args: Parameters<Logger["info"]>, method: (...a: unknown[]) => void) => void {
    const self = this;
    return function (args, method) {
      const [first, ...rest] = args as unknown[];
      if (first && typeof first === "object" && "err" in first) {
        const err = (first as { err: unknown }).err;
        if (self.isConnectivity(err)) {
          self.failed(err);
          const { err: _dropped, ...fields } = first as Record<string, unknown>;
          method.apply(this, [{ ...fields, database: "unreachable", ...summarize(err) }, ...rest]);
          return;
        }
      }
      method.apply(this, args as unknown[]);
    };
  }
}

import {
  BrokenCircuitError,
  type CircuitBreakerPolicy,
  CircuitState,
  circuitBreaker,
  handleWhen,
  type IBreaker,
  IsolatedCircuitError,
} from "cockatiel";
import { WorkerCallError } from "../execution/errors.js";

export type BreakerState = "closed" | "open" | "half_open" | "tripped";

export interface BreakerSettings {
  /** Failures within `windowMs` that open the breaker. */
  failures: number;
  windowMs: number;
  halfOpenAfterMs: number;
  /** Consecutive successful probes that close a half-open breaker. */
  closeAfterSuccesses: number;
}

export interface BreakerChange {
  workerId: string;
  workerName: string;
  from: BreakerState;
  to: BreakerState;
  reason: string;
  /** The task whose call opened the breaker; later changes of the same episode are reported on it too. */
  taskId: string | null;
  at: Date;
  /** An admin's trip or reset (the action records its own actor and reason). */
  byAdmin: boolean;
}

/**
 * Cockatiel's breaker strategy for "N failures within a time window": it opens when the count of
 * failures in the last `windowMs` reaches `failures`. Any failure while half-open re-opens.
 */
class WindowedFailureBreaker implements IBreaker {
  private failuresAt: number[] = [];

  constructor(
    private readonly threshold: number,
    private readonly windowMs: number,
  ) {}

  get state(): unknown {
    return { failuresAt: this.failuresAt };
  }

  set state(value: unknown) {
    this.failuresAt = [...((value as { failuresAt?: number[] })?.failuresAt ?? [])];
  }

  success(state: CircuitState): void {
    if (state === CircuitState.HalfOpen) this.failuresAt = [];
  }

  failure(state: CircuitState): boolean {
    const now = Date.now();
    this.failuresAt = this.failuresAt.filter((t) => now - t < this.windowMs);
    this.failuresAt.push(now);
    if (state !== CircuitState.Closed) return true;
    return this.failuresAt.length >= this.threshold;
  }
}

/** A worker's calls within the breaker window: what dispatch reads as its recent error rate. */
export interface RecentCalls {
  /** Calls that failed in a way that counts against the worker (the breaker's failures). */
  failures: number;
  /** Calls that succeeded (tries and probes). */
  successes: number;
  /** failures / (failures + successes); 0 without calls. */
  errorRate: number;
}

/** Outcomes kept per worker at most (the oldest go first): enough for a rate, bounded in memory. */
const MAX_OUTCOMES = 512;

interface Entry {
  workerName: string;
  /** When each recent call ended and whether it failed (counting against the worker), oldest first. */
  outcomes: { at: number; failed: boolean }[];
  policy: CircuitBreakerPolicy;
  state: BreakerState;
  since: Date;
  lastReason: string;
  lastTaskId: string | null;
  episodeTaskId: string | null;
  isolation: { dispose(): void } | null;
  probing: boolean;
}

export class BreakerOpenError extends WorkerCallError {
  constructor(workerName: string, state: BreakerState) {
    super(
      "breaker_open",
      state === "tripped"
        ? `Worker ${workerName}'s circuit breaker was tripped by an admin; reset it to send work there again.`
        : `Worker ${workerName}'s circuit breaker is ${state.replace("_", "-")}; the task goes to another capable worker.`,
      { retryable: false, countsAgainstWorker: false },
    );
  }
}

const STATE_NAMES: Record<CircuitState, BreakerState> = {
  [CircuitState.Closed]: "closed",
  [CircuitState.Open]: "open",
  [CircuitState.HalfOpen]: "half_open",
  [CircuitState.Isolated]: "tripped",
};

/** One cockatiel circuit breaker per worker, with its state kept where the API and the dispatcher read it. */
export class BreakerRegistry {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly settings: BreakerSettings,
    private readonly onChange: (change: BreakerChange) => void,
  ) {}

  private entry(workerId: string, workerName: string): Entry {
    let e = this.entries.get(workerId);
    if (!e) {
      e = this.create(workerId, workerName);
      this.entries.set(workerId, e);
    }
    e.workerName = workerName;
    return e;
  }

  private create(workerId: string, workerName: string): Entry {
    const policy = circuitBreaker(
      handleWhen((err) => err instanceof WorkerCallError && err.countsAgainstWorker),
      {
        halfOpenAfter: this.settings.halfOpenAfterMs,
        breaker: new WindowedFailureBreaker(this.settings.failures, this.settings.windowMs),
      },
    );
    const e: Entry = {
      workerName,
      outcomes: [],
      policy,
      state: "closed",
      since: new Date(),
      lastReason: "",
      lastTaskId: null,
      episodeTaskId: null,
      isolation: null,
      probing: false,
    };
    const outcome = (failed: boolean) => {
      e.outcomes.push({ at: Date.now(), failed });
      if (e.outcomes.length > MAX_OUTCOMES) e.outcomes.splice(0, e.outcomes.length - MAX_OUTCOMES);
    };
    policy.onSuccess(() => outcome(false));
    // Only failures that count (cockatiel also reports the ones its filter lets through, unhandled).
    policy.onFailure(({ reason, handled }) => {
      if (!handled) return;
      if ("error" in reason) e.lastReason = reason.error.message;
      outcome(true);
    });
    policy.onStateChange((s) => {
      const to = STATE_NAMES[s];
      const from = e.state;
      if (to === from || this.entries.get(workerId)?.policy !== policy) return;
      e.state = to;
      e.since = new Date();
      if (to === "open" && from === "closed") e.episodeTaskId = e.lastTaskId;
      // Probes just proved the worker well: its failures before them no longer weigh on dispatch.
      if (to === "closed") e.outcomes = [];
      const reason =
        to === "open"
          ? from === "half_open"
            ? `probe failed: ${e.lastReason}`
            : `${this.settings.failures} failures within ${this.settings.windowMs} ms; last: ${e.lastReason}`
          : to === "half_open"
            ? `cool-down of ${this.settings.halfOpenAfterMs} ms over; probing the worker`
            : to === "closed"
              ? from === "tripped"
                ? "reset by an admin"
                : `${this.settings.closeAfterSuccesses} probes succeeded`
              : "tripped by an admin";
      this.onChange({
        workerId,
        workerName: e.workerName,
        from,
        to,
        reason,
        taskId: e.episodeTaskId,
        at: e.since,
        byAdmin: to === "tripped" || from === "tripped",
      });
      if (to === "closed") e.episodeTaskId = null;
    });
    return e;
  }

  state(workerId: string): BreakerState {
    return this.entries.get(workerId)?.state ?? "closed";
  }

  /** Whether any breaker in this process is open (cooling down or due for a probe). */
  anyOpen(): boolean {
    for (const e of this.entries.values()) if (e.state === "open") return true;
    return false;
  }

  /** The worker's calls within the last BREAKER_WINDOW_MS, in this process (forgotten when its breaker closes). */
  recent(workerId: string): RecentCalls {
    const e = this.entries.get(workerId);
    if (!e) return { failures: 0, successes: 0, errorRate: 0 };
    const since = Date.now() - this.settings.windowMs;
    const first = e.outcomes.findIndex((o) => o.at > since);
    if (first === -1) e.outcomes = [];
    else if (first > 0) e.outcomes.splice(0, first);
    let failures = 0;
    for (const o of e.outcomes) if (o.failed) failures++;
    const successes = e.outcomes.length - failures;
    return { failures, successes, errorRate: e.outcomes.length ? failures / e.outcomes.length : 0 };
  }

  snapshot(workerId: string): { state: BreakerState; since: Date | null } {
    const e = this.entries.get(workerId);
    return { state: e?.state ?? "closed", since: e?.since ?? null };
  }

  /** Runs one call through the worker's breaker. A breaker that is not closed refuses at once. */
  async run<T>(workerId: string, workerName: string, taskId: string | null, fn: () => Promise<T>): Promise<T> {
    const e = this.entry(workerId, workerName);
    // Only probes go through a breaker that is not closed: real work never serves as the half-open trial.
    if (e.state !== "closed") throw new BreakerOpenError(workerName, e.state);
    e.lastTaskId = taskId;
    try {
      return await e.policy.execute(() => fn());
    } catch (err) {
      if (err instanceof BrokenCircuitError || err instanceof IsolatedCircuitError) {
        throw new BreakerOpenError(workerName, e.state);
      }
      throw err;
    }
  }

  /**
   * For an open breaker whose cool-down is over: half-opens it and runs `check` the configured number
   * of times in a row; all succeed → closed, one fails → open again. Does nothing while cooling down.
   */
  async probe(workerId: string, workerName: string, check: () => Promise<void>): Promise<BreakerState> {
    const e = this.entry(workerId, workerName);
    if (e.state !== "open" || e.probing) return e.state;
    e.probing = true;
    try {
      await e.policy.execute(async () => {
        for (let i = 0; i < this.settings.closeAfterSuccesses; i++) await check();
      });
    } catch {
      // Still cooling down, or the probe failed and the breaker re-opened: its state says which.
    } finally {
      e.probing = false;
    }
    return e.state;
  }

  /** Holds the breaker open until `reset`, as an admin asked (persisted by the caller). */
  trip(workerId: string, workerName: string): void {
    const e = this.entry(workerId, workerName);
    if (!e.isolation) e.isolation = e.policy.isolate();
  }

  /**
   * Brings the breaker in line with the persisted trip flag: another process sharing the database may
   * have tripped or reset it. Automatic open and half-open states stay this process's own. Returns
   * the state after.
   */
  sync(workerId: string, workerName: string, tripped: boolean): BreakerState {
    const state = this.state(workerId);
    if (tripped && state !== "tripped") this.trip(workerId, workerName);
    else if (!tripped && state === "tripped") this.reset(workerId, workerName);
    return this.state(workerId);
  }

  /** Closes the breaker whatever its state, forgetting past failures. */
  reset(workerId: string, workerName: string): void {
    const old = this.entry(workerId, workerName);
    const from = old.state;
    const fresh = this.create(workerId, workerName);
    this.entries.set(workerId, fresh);
    if (from !== "closed") {
      this.onChange({
        workerId,
        workerName,
        from,
        to: "closed",
        reason: "reset by an admin",
        taskId: old.episodeTaskId,
        at: fresh.since,
        byAdmin: true,
      });
    }
  }

  remove(workerId: string): void {
    this.entries.delete(workerId);
  }
}

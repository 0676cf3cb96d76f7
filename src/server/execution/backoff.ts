import type { Options as RetryOptions } from "p-retry";

/**
 * The one backoff of the codebase: p-retry's own exponential backoff. Retry n (1-based) waits
 * `min(maxMs, baseMs · 2^(n-1))` times a random factor in [1, 2), never more than `maxMs`
 * (RETRY_BASE_DELAY_MS and RETRY_MAX_DELAY_MS for calls to workers).
 */
export interface Backoff {
  baseMs: number;
  maxMs: number;
}

const FACTOR = 2;

/** The p-retry options that make up the backoff: p-retry computes and takes the delay itself. */
export function retryBackoff(b: Backoff): Pick<RetryOptions, "factor" | "minTimeout" | "maxTimeout" | "randomize"> {
  return { factor: FACTOR, minTimeout: b.baseMs, maxTimeout: b.maxMs, randomize: true };
}

/**
 * The least p-retry waits before retry `n` (1-based): its delay with the random factor at its
 * lowest (1). What a try's failure reports as "retrying in", and what a `Retry-After` wait adds to.
 */
export function leastBackoffMs(n: number, b: Backoff): number {
  return Math.min(b.maxMs, Math.round(b.baseMs * FACTOR ** Math.max(0, n - 1)));
}

/**
 * p-retry's delay before retry `n`, for a loop that cannot run under p-retry (a reconnect timer, a
 * delivery that a newer one supersedes): the same formula, computed here only.
 */
export function backoffDelayMs(n: number, b: Backoff, random = Math.random): number {
  return Math.min(b.maxMs, Math.round(leastBackoffMs(n, b) * (1 + random())));
}

/** `Retry-After` as seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Waits `ms`; rejects with the signal's reason as soon as it is aborted. */
export function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    if (ms <= 0) return resolve();
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** A duration as an operator reads it in a message: 800 ms, 60 s, 30 min, 2 h. */
export function formatDuration(ms: number): string {
  const exact = (n: number, unit: string) => `${Number.isInteger(n) ? n : n.toFixed(1)} ${unit}`;
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120_000 || ms % 60_000 !== 0) return exact(ms / 1000, "s");
  if (ms < 2 * 3_600_000 || ms % 3_600_000 !== 0) return exact(ms / 60_000, "min");
  return exact(ms / 3_600_000, "h");
}

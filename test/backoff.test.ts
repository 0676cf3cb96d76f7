import { describe, expect, it } from "vitest";
import {
  backoffDelayMs,
  formatDuration,
  leastBackoffMs,
  parseRetryAfter,
  retryBackoff,
} from "../src/server/execution/backoff.js";

const b = { baseMs: 500, maxMs: 30_000 };

describe("the one backoff", () => {
  it("is p-retry's: base doubling per retry, times [1, 2), capped", () => {
    expect(retryBackoff(b)).toEqual({ factor: 2, minTimeout: 500, maxTimeout: 30_000, randomize: true });
    expect([1, 2, 3, 7, 20].map((n) => leastBackoffMs(n, b))).toEqual([500, 1000, 2000, 30_000, 30_000]);
    expect(backoffDelayMs(1, b, () => 0)).toBe(500);
    expect(backoffDelayMs(1, b, () => 0.999)).toBe(1000);
    expect(backoffDelayMs(3, b, () => 0.5)).toBe(3000);
    expect(backoffDelayMs(6, b, () => 0.9)).toBe(30_000);
  });

  it("reads Retry-After as seconds or an HTTP date", () => {
    expect(parseRetryAfter("1")).toBe(1000);
    expect(parseRetryAfter("0.5")).toBe(500);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4_000)).toBe(6_000);
    expect(parseRetryAfter("soon")).toBeUndefined();
    expect(parseRetryAfter(null)).toBeUndefined();
  });

  it("names durations as an operator reads them", () => {
    expect([800, 1000, 60_000, 90_000, 1_800_000, 3_600_000, 7_200_000].map(formatDuration)).toEqual([
      "800 ms",
      "1 s",
      "60 s",
      "90 s",
      "30 min",
      "60 min",
      "2 h",
    ]);
  });
});

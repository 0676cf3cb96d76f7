import { describe, expect, it } from "vitest";
import {
  allowedInFlight,
  type DispatchCandidate,
  dispatchOrder,
  mayRefill,
  unusableReason,
  waitingReason,
} from "../src/server/execution/dispatch-order.js";

const w = (name: string, over: Partial<DispatchCandidate> = {}): DispatchCandidate => ({
  id: name,
  name,
  maxConcurrency: 4,
  busy: 0,
  tripped: false,
  health: "ok",
  breaker: "closed",
  errorRate: 0,
  ...over,
});

const order = (cs: DispatchCandidate[]) => dispatchOrder(cs).map((s) => `${s.worker.name}:${s.claim}`);

describe("dispatch order", () => {
  it("never sends to a worker that is down, whose breaker is open or half-open, or that an admin tripped", () => {
    const cs = [
      w("down", { health: "down" }),
      w("open", { breaker: "open" }),
      w("probing", { breaker: "half_open" }),
      w("tripped", { tripped: true }),
      w("tripped-here", { breaker: "tripped" }),
      w("fine"),
    ];
    expect(order(cs)).toEqual(["fine:4"]);
    expect(cs.map(unusableReason)).toEqual([
      "health check down",
      "circuit breaker open",
      "circuit breaker half-open",
      "circuit breaker tripped by an admin",
      "circuit breaker tripped by an admin",
      null,
    ]);
  });

  it("a fast-failing worker with free slots does not come first, and gets only its healthy share", () => {
    // The old rule (most free slots first) put the failing worker first: it frees its slots fastest.
    const failing = w("failing", { maxConcurrency: 8, errorRate: 1 });
    const healthy = w("healthy", { maxConcurrency: 4, busy: 3 });
    expect(order([failing, healthy])).toEqual(["healthy:1", "failing:1"]);
    // At most one attempt in flight while all its recent calls failed: none more while it has one.
    expect(order([w("failing", { errorRate: 1, busy: 1 })])).toEqual([]);
    expect(allowedInFlight(w("half", { maxConcurrency: 8, errorRate: 0.5 }))).toBe(4);
    expect(order([w("half", { maxConcurrency: 8, errorRate: 0.5, busy: 3 })])).toEqual(["half:1"]);
  });

  it("among healthy workers: least loaded first, then most free slots, then by name", () => {
    expect(
      order([
        w("busy", { maxConcurrency: 4, busy: 3 }),
        w("idle-small", { maxConcurrency: 2 }),
        w("idle-big", { maxConcurrency: 6 }),
        w("half", { maxConcurrency: 4, busy: 2 }),
        w("full", { maxConcurrency: 2, busy: 2 }),
      ]),
    ).toEqual(["idle-big:6", "idle-small:2", "half:2", "busy:1"]);
  });

  it("a degraded worker comes after an ok one of the same error rate, with half its slots", () => {
    expect(order([w("degraded", { health: "degraded" }), w("ok", { busy: 3 })])).toEqual(["ok:1", "degraded:2"]);
  });

  it("lower recent error rate beats lower load", () => {
    expect(order([w("flaky", { errorRate: 0.25 }), w("steady", { busy: 2 })])).toEqual(["steady:2", "flaky:3"]);
  });

  it("refills at once only a worker with no recent failures, closed breaker and health not down or degraded", () => {
    const ok = { tripped: false, breaker: "closed", health: "ok", errorRate: 0 } as const;
    expect(mayRefill(ok)).toBe(true);
    expect(mayRefill({ ...ok, health: "unknown" })).toBe(true);
    expect(mayRefill({ ...ok, errorRate: 0.1 })).toBe(false);
    expect(mayRefill({ ...ok, health: "down" })).toBe(false);
    expect(mayRefill({ ...ok, health: "degraded" })).toBe(false);
    expect(mayRefill({ ...ok, breaker: "open" })).toBe(false);
    expect(mayRefill({ ...ok, tripped: true })).toBe(false);
  });

  it("says why a task waits: no capable worker, or every capable one unusable with its reason", () => {
    expect(waitingReason("x", [])).toContain('No enabled worker has the capability "x"');
    expect(waitingReason("x", [w("a", { health: "down" }), w("b", { breaker: "open" })])).toBe(
      'Every worker with "x" is unavailable (a: health check down, b: circuit breaker open); waiting for one to recover.',
    );
    // A usable worker, even a full one, means the task waits for a slot, not for a recovery.
    expect(waitingReason("x", [w("a", { health: "down" }), w("b", { busy: 4 })])).toBeNull();
  });
});

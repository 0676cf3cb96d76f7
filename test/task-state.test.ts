import { describe, expect, it } from "vitest";
import {
  assertTransition,
  IllegalTransitionError,
  TASK_STATES,
  TRANSITIONS,
  type TransitionActor,
} from "../src/shared/task-state.js";

const ACTORS: TransitionActor[] = ["system", "operator", "admin"];

describe("task state machine", () => {
  it("has the transitions of the product specification", () => {
    const pairs = new Set(TRANSITIONS.map((t) => `${t.from}>${t.to}`));
    const expected = [
      "queued>running",
      "running>judging",
      "judging>accepted",
      "judging>changes_requested",
      "judging>rejected",
      "running>failed",
      "queued>canceling",
      "running>canceling",
      "judging>canceling",
      "canceling>canceled",
      "changes_requested>queued",
      "failed>queued",
      "rejected>queued",
      "canceled>queued",
      "running>queued",
    ];
    for (const p of expected) expect(pairs, p).toContain(p);
  });

  it("defines each (from, to) pair once", () => {
    const pairs = TRANSITIONS.map((t) => `${t.from}>${t.to}`);
    expect(new Set(pairs).size).toBe(pairs.length);
  });

  for (const t of TRANSITIONS) {
    for (const actor of ACTORS) {
      const allowed = t.by.includes(actor);
      it(`${t.from} → ${t.to} by ${actor} is ${allowed ? "legal" : "refused"}`, () => {
        if (allowed) expect(assertTransition(t.from, t.to, actor).name).toBe(t.name);
        else expect(() => assertTransition(t.from, t.to, actor)).toThrow(`only by ${t.by.join(" or ")}`);
      });
    }
  }

  const legal = new Set(TRANSITIONS.map((t) => `${t.from}>${t.to}`));
  for (const from of TASK_STATES) {
    for (const to of TASK_STATES) {
      if (legal.has(`${from}>${to}`)) continue;
      it(`${from} → ${to} is illegal for everyone, and the error names both states`, () => {
        for (const actor of ACTORS) {
          let error: unknown;
          try {
            assertTransition(from, to, actor);
          } catch (e) {
            error = e;
          }
          expect(error).toBeInstanceOf(IllegalTransitionError);
          expect((error as Error).message).toContain(`from ${from} to ${to}`);
        }
      });
    }
  }

  it("final states say so", () => {
    expect(() => assertTransition("accepted", "running", "system")).toThrow("legal next states");
  });
});

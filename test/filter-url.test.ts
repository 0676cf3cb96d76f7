import { describe, expect, it } from "vitest";
import { parseUrlFilter, toSearchParams, toTaskFilter } from "../src/web/tasks-list/filter-url.js";

describe("the task list's filter in the address bar", () => {
  it("reads a repeated key as well as a comma list, so no state is dropped without warning", () => {
    const repeated = parseUrlFilter(new URLSearchParams("state=queued&state=running&tier=1&tier=3"));
    const listed = parseUrlFilter(new URLSearchParams("state=running,queued&tier=3,1"));
    expect(repeated.states).toEqual(["queued", "running"]);
    expect(repeated.riskTiers).toEqual([1, 3]);
    expect(listed).toEqual(repeated);
    expect(toTaskFilter(repeated).states).toEqual(["queued", "running"]);
    // Written back in the one canonical form.
    expect(toSearchParams(repeated).toString()).toBe("state=queued%2Crunning&tier=1%2C3");
  });

  it("ignores values it does not know and keeps the rest", () => {
    const f = parseUrlFilter(new URLSearchParams("state=queued&state=sleeping,running&priority=urgent"));
    expect(f.states).toEqual(["queued", "running"]);
    expect(f.priorities).toEqual([]);
  });
});

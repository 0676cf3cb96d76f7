import { describe, expect, it } from "vitest";
import { countText } from "../src/web/tasks-list/count-text.js";
import { MAX_PAGES, parsePages, withPages } from "../src/web/tasks-list/filter-url.js";

describe("the task list's total and its loaded pages in the address", () => {
  it("writes the total with thousands separators, and a + when the count stopped at its cap", () => {
    expect(countText(0)).toBe("0 tasks");
    expect(countText(1)).toBe("1 task");
    expect(countText(1234)).toBe("1,234 tasks");
    expect(countText(10_000, true)).toBe("10,000+ tasks");
  });

  it("reads ?pages as a whole number from 1 to MAX_PAGES, and writes it only past the first page", () => {
    expect(parsePages(new URLSearchParams(""))).toBe(1);
    expect(parsePages(new URLSearchParams("pages=3"))).toBe(3);
    for (const bad of ["0", "-2", "2.5", "x", ""]) expect(parsePages(new URLSearchParams({ pages: bad }))).toBe(1);
    expect(parsePages(new URLSearchParams("pages=999"))).toBe(MAX_PAGES);
    const base = new URLSearchParams("state=queued&sort=created_asc");
    expect(withPages(base, 2).toString()).toBe("state=queued&sort=created_asc&pages=2");
    expect(withPages(new URLSearchParams("q=x&pages=4"), 1).toString()).toBe("q=x");
    expect(withPages(base, 50).get("pages")).toBe(String(MAX_PAGES));
    expect(base.toString()).toBe("state=queued&sort=created_asc");
  });
});

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DomainError } from "../src/server/errors.js";
import { SearchSample, searchPieces } from "../src/server/tasks/search.js";
import { type TaskFilter, taskFilterSchema } from "../src/shared/task-list.js";
import { type TaskSpecInput, taskSpecSchema } from "../src/shared/task-spec.js";
import { DATABASES } from "./helpers/databases.js";
import { actor, type Harness, harness } from "./helpers/services.js";

const spec = (input: TaskSpecInput) => taskSpecSchema.parse(input);
const filter = (f: TaskFilter = {}) => taskFilterSchema.parse(f);
const op = actor("operator");

async function rejects(p: Promise<unknown>, code: DomainError["code"], text: string) {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DomainError);
  expect((err as DomainError).code).toBe(code);
  expect((err as Error).message).toContain(text);
}

describe.each(DATABASES)("tasks on %s", (kind) => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness(kind);
  });
  afterAll(() => h.dispose());
  const eventsOf = async (taskId: string) => (await h.services.tasks.events({ taskId, limit: 1_000 })).items;

  it("creates a task with its creation event in the same transaction", async () => {
    const t = await h.services.tasks.create(op, spec({ title: "Write docs", input: { script: "echo hi" } }));
    expect(t).toMatchObject({ title: "Write docs", state: "queued", createdBy: "operator-1", attempt: 0 });
    const got = await h.services.tasks.get(t.id);
    expect(got.spec.input).toEqual({ script: "echo hi" });
    const events = await eventsOf(t.id);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ type: "created", toState: "queued", actor: "operator-1" });
  });

  it("answers NOT_FOUND for an unknown id", async () => {
    await rejects(h.services.tasks.get("00000000-0000-4000-8000-000000000000"), "NOT_FOUND", "does not exist");
  });

  it("cancels a queued task: canceling then canceled (confirmed), two events, reason kept", async () => {
    const t = await h.services.tasks.create(op, spec({ title: "to cancel" }));
    const c = await h.services.tasks.cancel(op, t.id, "not needed");
    expect(c.state).toBe("canceled");
    expect(c.stateReason).toBe("not needed");
    const events = await eventsOf(t.id);
    expect(events.map((e) => [e.fromState, e.toState, e.actor])).toEqual([
      [null, "queued", "operator-1"],
      ["queued", "canceling", "operator-1"],
      ["canceling", "canceled", "system"],
    ]);
    expect(events[2]?.data).toMatchObject({ confirmed: true, reason: "not needed" });

    // canceled → canceling is illegal, and changes nothing
    await rejects(h.services.tasks.cancel(op, t.id, "again"), "BAD_REQUEST", "from canceled to canceling");
    expect(await eventsOf(t.id)).toHaveLength(3);

    // retry brings it back to the queue
    const r = await h.services.tasks.retry(op, t.id);
    expect(r.state).toBe("queued");
  });

  it("refuses an illegal transition with both states named, and a system-only one to an operator", async () => {
    const t = await h.services.tasks.create(op, spec({ title: "illegal" }));
    await rejects(h.services.tasks.retry(op, t.id), "BAD_REQUEST", "from queued to queued");
    await rejects(
      h.services.tasks.transition(t.id, [{ to: "running", by: "operator", actorId: op.id }]),
      "BAD_REQUEST",
      "only by system",
    );
    await rejects(
      h.services.tasks.transition(t.id, [{ to: "accepted", by: "system", actorId: "system" }]),
      "BAD_REQUEST",
      "from queued to accepted",
    );
    expect((await h.services.tasks.get(t.id)).state).toBe("queued");
  });

  it("refuses a transition when a concurrent one won the race", async () => {
    const t = await h.services.tasks.create(op, spec({ title: "race" }));
    const results = await Promise.allSettled([
      h.services.tasks.cancel(op, t.id, "first"),
      h.services.tasks.cancel(op, t.id, "second"),
    ]);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    expect((await eventsOf(t.id)).filter((e) => e.toState === "canceling")).toHaveLength(1);
  });
});

describe.each(DATABASES)("tasks.list on %s", (kind) => {
  let h: Harness;
  const ids: Record<string, string> = {};
  beforeAll(async () => {
    h = await harness(kind);
    const rows: TaskSpecInput[] = [
      {
        title: "Alpha parser fix",
        description: "crash on 100% empty_input",
        priority: "critical",
        riskTier: 1,
        mode: "fix",
      },
      { title: "Beta docs", description: "write the README", priority: "low", riskTier: 3, mode: "chore" },
      { title: "Gamma feature", description: "add the export button", priority: "high", riskTier: 2, mode: "feature" },
      {
        title: "Delta refactor",
        description: "split the PARSER module",
        priority: "medium",
        riskTier: 2,
        mode: "refactor",
      },
      { title: "Epsilon feature", description: "dark mode", priority: "critical", riskTier: 2, mode: "feature" },
    ];
    for (const r of rows) ids[r.title] = (await h.services.tasks.create(op, spec(r))).id;
    await h.services.tasks.cancel(op, ids["Beta docs"] as string, "dup");
  });
  afterAll(() => h.dispose());

  const titles = async (f: TaskFilter, limit = 50) =>
    (await h.services.tasks.list(filter(f), limit)).items.map((t) => t.title);

  it("sorts by creation, newest first by default, and oldest first on request", async () => {
    expect(await titles({})).toEqual([
      "Epsilon feature",
      "Delta refactor",
      "Gamma feature",
      "Beta docs",
      "Alpha parser fix",
    ]);
    expect((await titles({ sort: "created_asc" }))[0]).toBe("Alpha parser fix");
  });

  it("sorts by priority with creation order as tie-breaker", async () => {
    expect(await titles({ sort: "priority_desc" })).toEqual([
      "Epsilon feature",
      "Alpha parser fix",
      "Gamma feature",
      "Delta refactor",
      "Beta docs",
    ]);
    expect(await titles({ sort: "priority_asc" })).toEqual([
      "Beta docs",
      "Delta refactor",
      "Gamma feature",
      "Alpha parser fix",
      "Epsilon feature",
    ]);
  });

  it("filters by state, priority, risk tier and mode", async () => {
    expect(await titles({ states: ["canceled"] })).toEqual(["Beta docs"]);
    expect(await titles({ priorities: ["critical"] })).toEqual(["Epsilon feature", "Alpha parser fix"]);
    expect(await titles({ riskTiers: [2], modes: ["feature"] })).toEqual(["Epsilon feature", "Gamma feature"]);
    expect(await titles({ states: ["queued"], priorities: ["low"] })).toEqual([]);
  });

  it("searches title and description case-insensitively, with % and _ taken literally", async () => {
    expect(await titles({ text: "parser" })).toEqual(["Delta refactor", "Alpha parser fix"]);
    expect(await titles({ text: "README" })).toEqual(["Beta docs"]);
    expect(await titles({ text: "100%" })).toEqual(["Alpha parser fix"]);
    expect(await titles({ text: "%" })).toEqual(["Alpha parser fix"]);
    expect(await titles({ text: "y_i" })).toEqual(["Alpha parser fix"]);
    expect(await titles({ text: "_" })).toEqual(["Alpha parser fix"]);
  });

  it("filters by created range", async () => {
    const future = new Date(Date.now() + 3_600_000);
    expect(await titles({ createdFrom: future })).toEqual([]);
    expect(await titles({ createdTo: future })).toHaveLength(5);
  });

  it.each(["created_desc", "created_asc", "priority_desc", "priority_asc"] as const)(
    "pages with a cursor (%s), stable while tasks are inserted",
    async (sort) => {
      const all = await titles({ sort });
      const seen: string[] = [];
      let cursor: string | null = null;
      let inserted = 0;
      do {
        const page: Awaited<ReturnType<typeof h.services.tasks.list>> = await h.services.tasks.list(
          filter({ sort, text: "a" }),
          2,
          cursor,
        );
        seen.push(...page.items.map((t) => t.title));
        cursor = page.nextCursor;
        // A concurrent insert between pages must neither shift nor repeat rows of later pages.
        await h.services.tasks.create(op, spec({ title: `zz added ${sort} ${inserted++}`, priority: "high" }));
      } while (cursor);
      // Rows that existed before paging began appear exactly once, in order; rows added meanwhile may or may not.
      const expected = all.filter((t) => t.toLowerCase().includes("a"));
      const before = new Set(expected);
      expect(seen.filter((t) => before.has(t))).toEqual(expected);
      expect(new Set(seen).size).toBe(seen.length);
    },
  );

  it("refuses a malformed cursor or one from another sort", async () => {
    await rejects(h.services.tasks.list(filter(), 2, "not-a-cursor"), "BAD_REQUEST", "cursor is invalid");
    const page = await h.services.tasks.list(filter({ sort: "created_desc" }), 1);
    await rejects(
      h.services.tasks.list(filter({ sort: "priority_desc" }), 1, page.nextCursor),
      "BAD_REQUEST",
      "cursor is invalid",
    );
  });
});

describe.each(DATABASES)("tasks.list text search on %s", (kind) => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness(kind);
    const rows: TaskSpecInput[] = [
      { title: "Alpha parser fix", description: "crash on 100% empty_input" },
      { title: "Beta docs", description: "" },
      // A title holding the separator the search column puts between title and description.
      { title: "Gamma unit\u001fseparator", description: "plain" },
    ];
    for (const r of rows) await h.services.tasks.create(op, spec(r));
    // Statistics for the search sample that orders the words of a multi-word term.
    await h.db.exec("ANALYZE tasks");
  });
  afterAll(() => h.dispose());

  const titles = async (text: string) => (await h.services.tasks.list(filter({ text }), 50)).items.map((t) => t.title);

  it("keeps search_text equal to title, chr(31), description, maintained by the database alone", async () => {
    const rows = await h.db.query<{ title: string; description: string; search_text: string }>(
      "SELECT title, description, search_text FROM tasks",
    );
    expect(rows).toHaveLength(3);
    for (const r of rows) expect(r.search_text).toBe(`${r.title}\u001f${r.description}`);
    // The column is generated: a write through Prisma is refused by the database, not silently kept.
    const id = (await h.services.tasks.list(filter({ text: "beta" }), 1)).items[0]?.id as string;
    await expect(h.db.prisma.task.update({ where: { id }, data: { searchText: "forged" } })).rejects.toThrow();
    expect((await h.services.tasks.get(id)).title).toBe("Beta docs");
    expect(await titles("forged")).toEqual([]);
  });

  it("finds a term in either field, at its start or end, in any case", async () => {
    expect(await titles("parser fix")).toEqual(["Alpha parser fix"]);
    expect(await titles("ALPHA")).toEqual(["Alpha parser fix"]);
    expect(await titles("crash on")).toEqual(["Alpha parser fix"]);
    expect(await titles("empty_INPUT")).toEqual(["Alpha parser fix"]);
    expect(await titles("docs")).toEqual(["Beta docs"]);
  });

  it("never matches across the seam between title and description", async () => {
    // Title ends "fix", description starts "crash": none of these is in either field alone.
    expect(await titles("fix crash")).toEqual([]);
    expect(await titles("fixcrash")).toEqual([]);
    expect(await titles("fix\u001fcrash")).toEqual([]);
    // Taken as wildcards, `_` would match the separator and `%` anything: they must stay literal.
    expect(await titles("fix_crash")).toEqual([]);
    expect(await titles("fix%crash")).toEqual([]);
    expect(await titles("100%")).toEqual(["Alpha parser fix"]);
    expect(await titles("y_i")).toEqual(["Alpha parser fix"]);
    expect(await titles("%")).toEqual(["Alpha parser fix"]);
  });

  it("reads the planner's sample of search_text, and a multi-word term gives the same rows in any order", async () => {
    const sample = await new SearchSample(h.db).get();
    expect(sample).toContain("alpha parser fix\u001fcrash on 100% empty_input");
    expect(await titles("on 100% EMPTY_input")).toEqual(["Alpha parser fix"]);
    expect(await titles("empty_input on 100%")).toEqual([]);
    expect(await titles("  parser fix ")).toEqual(["Alpha parser fix"]);
    // The whole term is checked as typed: two spaces are not one.
    expect(await titles("parser  fix")).toEqual([]);
  });

  it("still finds a separator character that is inside one field", async () => {
    expect(await titles("unit\u001fsep")).toEqual(["Gamma unit\u001fseparator"]);
    expect(await titles("separator\u001fplain")).toEqual([]);
  });
});

describe("searchPieces", () => {
  it("cuts a term before each run of whitespace, so each piece keeps its word boundary", () => {
    expect(searchPieces("webhook")).toEqual(["webhook"]);
    expect(searchPieces("see ticket 4242.")).toEqual([" ticket", " 4242.", "see"]);
    expect(searchPieces("a  b")).toEqual(["a", " b"]);
  });

  it("puts the piece found in fewest sampled rows first, then the longer one", () => {
    const sample = ["operators reported that the parser misbehaves; see ticket 7.", "see ticket 12.", "fix login"];
    expect(searchPieces("ticket 4242.", sample)).toEqual([" 4242.", "ticket"]);
    expect(searchPieces("Parser TICKET", sample)).toEqual(["Parser", " TICKET"]);
    expect(searchPieces("ticket parser", sample)).toEqual([" parser", "ticket"]);
  });
});

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TERMINAL_STATES } from "../src/shared/task-state.js";
import type { TaskSort } from "../src/shared/task-vocabulary.js";
import { DATABASES } from "./helpers/databases.js";
import { type EngineApp, startEngineApp, waitFor } from "./helpers/fault-worker.js";
import { type ReferenceWorkerProcess, startReferenceWorkerProcess } from "./helpers/worker.js";

const TOKEN = "task-list-worker-token";
/** No worker has it: these tasks stay queued. */
const IDLE = "task-list-none";

describe.each(DATABASES)("the task list (sorts, id search, capped count, last run) on %s", (kind) => {
  let s: EngineApp;
  let worker: ReferenceWorkerProcess;
  /** Created in this order: titles and priorities. */
  const made: { id: string; title: string; priority: "low" | "medium" | "high" | "critical" }[] = [];

  beforeAll(async () => {
    worker = await startReferenceWorkerProcess({ env: { WORKER_TOKEN: TOKEN } });
    s = await startEngineApp(kind);
    await s.http.workers.register.mutate({ name: "list-ref", url: worker.url, capabilities: ["script"], token: TOKEN });
    for (const [title, priority] of [
      ["Alpha one", "high"],
      ["Bravo two", "low"],
      ["Charlie three", "critical"],
      ["Delta four", "medium"],
      ["Echo five", "low"],
    ] as const) {
      const t = await s.http.tasks.create.mutate({ title, priority, capability: IDLE });
      made.push({ id: t.id, title, priority });
    }
  }, 180_000);
  afterAll(async () => {
    await s?.stop();
    await worker?.stop();
  });

  const titles = async (sort: TaskSort, limit = 50) => {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { items: { title: string; capability: string }[]; nextCursor: string | null } =
        await s.http.tasks.list.query({ filter: { sort }, limit, cursor });
      seen.push(...page.items.filter((t) => t.capability === IDLE).map((t) => t.title));
      cursor = page.nextCursor;
    } while (cursor);
    return seen;
  };

  it("orders by created and by priority either way, the same whole list page by page", async () => {
    const created = made.map((t) => t.title);
    expect(await titles("created_desc")).toEqual([...created].reverse());
    expect(await titles("created_asc")).toEqual(created);
    // Equal priorities keep creation order (newest first when descending).
    const byPriorityDesc = ["Charlie three", "Alpha one", "Delta four", "Echo five", "Bravo two"];
    expect(await titles("priority_desc")).toEqual(byPriorityDesc);
    expect(await titles("priority_asc")).toEqual([...byPriorityDesc].reverse());
    for (const sort of ["created_desc", "created_asc", "priority_desc", "priority_asc"] as const) {
      expect(await titles(sort, 2)).toEqual(await titles(sort));
    }
  });

  it("orders by last update either way, ties by creation, the same whole list page by page", async () => {
    const created = made.map((t) => t.title);
    expect(await titles("updated_desc")).toEqual([...created].reverse());
    // A real update (a cancel) brings its task to the top.
    const bravo = made[1] as (typeof made)[number];
    await s.http.tasks.cancel.mutate({ id: bravo.id, reason: "updated for the sort" });
    expect((await titles("updated_desc"))[0]).toBe("Bravo two");
    expect((await titles("updated_asc")).at(-1)).toBe("Bravo two");
    // Equal update times (to the millisecond) are ordered by creation, also across a page's end.
    await s.db.exec(
      `UPDATE tasks SET updated_at = CASE title WHEN 'Echo five' THEN '2026-03-01T10:00:00.002Z'::timestamptz
         WHEN 'Bravo two' THEN '2026-03-01T10:00:00.001Z'::timestamptz ELSE '2026-03-01T10:00:00.001Z'::timestamptz END
       WHERE capability = '${IDLE}'`,
    );
    const byUpdatedDesc = ["Echo five", "Delta four", "Charlie three", "Bravo two", "Alpha one"];
    expect(await titles("updated_desc")).toEqual(byUpdatedDesc);
    expect(await titles("updated_asc")).toEqual([...byUpdatedDesc].reverse());
    for (const sort of ["updated_desc", "updated_asc"] as const) {
      expect(await titles(sort, 1)).toEqual(await titles(sort));
      expect(await titles(sort, 2)).toEqual(await titles(sort));
    }
    // A cursor of another sort's shape is refused.
    const first = await s.http.tasks.list.query({ filter: { sort: "created_desc" }, limit: 1 });
    await expect(
      s.http.tasks.list.query({ filter: { sort: "updated_desc" }, limit: 1, cursor: first.nextCursor }),
    ).rejects.toThrow(/cursor is invalid/);
  });

  it("finds a task by its whole id or an 8+ hex prefix of it, in any case, with or without its dashes", async () => {
    const target = made[2] as (typeof made)[number];
    const found = async (text: string) =>
      (await s.http.tasks.list.query({ filter: { text } })).items.map((t) => t.id).filter((id) => id === target.id);
    expect(await found(target.id)).toEqual([target.id]);
    expect(await found(target.id.toUpperCase())).toEqual([target.id]);
    expect(await found(target.id.slice(0, 8))).toEqual([target.id]);
    expect(await found(target.id.slice(0, 13))).toEqual([target.id]);
    expect(await found(target.id.replace(/-/g, "").slice(0, 20))).toEqual([target.id]);
    // Seven digits are too few to be an id: only the title and description are searched.
    expect(await found(target.id.slice(0, 7))).toEqual([]);
    const count = await s.http.tasks.count.query({ filter: { text: target.id.slice(0, 10) } });
    expect(count).toMatchObject({ count: 1, capped: false });
    // A word that is not hex is still searched in titles.
    expect((await s.http.tasks.list.query({ filter: { text: "Charlie" } })).items.map((t) => t.id)).toEqual([
      target.id,
    ]);
    // The id search goes with the other filters: the task is critical, so "low" leaves it out.
    expect((await s.http.tasks.list.query({ filter: { text: target.id, priorities: ["low"] } })).items).toEqual([]);
  });

  it("a listed task names its latest attempt's worker and run time; one never dispatched has none", async () => {
    const ran = await s.http.tasks.create.mutate({
      title: "Run for the list",
      input: { script: "printf 'listed\\n' > listed.txt" },
    });
    await waitFor(
      `task ${ran.id} to settle`,
      () => s.http.tasks.get.query({ id: ran.id }),
      (t) => TERMINAL_STATES.includes(t.state) || t.state === "changes_requested",
      120_000,
    );
    const { items } = await s.http.tasks.list.query({ filter: { text: "Run for the list" } });
    const row = items[0];
    expect(row?.attempt).toBeGreaterThanOrEqual(1);
    expect(row?.lastRun?.worker?.name).toBe("list-ref");
    expect(row?.lastRun?.finishedAt).toBeInstanceOf(Date);
    expect(row?.lastRun?.finishedAt?.getTime()).toBeGreaterThanOrEqual(row?.lastRun?.startedAt.getTime() as number);
    expect(row?.updatedAt.getTime()).toBeGreaterThanOrEqual(row?.createdAt.getTime() as number);
    const idle = await s.http.tasks.list.query({ filter: { text: "Alpha one" } });
    expect(idle.items[0]).toMatchObject({ attempt: 0, lastRun: null });
  }, 180_000);

  it("counts up to 10,000 and says when there are more", async () => {
    const before = await s.http.tasks.count.query({});
    expect(before).toEqual({ count: made.length + 1, capped: false, limit: 1000 });
    expect(await s.http.tasks.count.query({ filter: { priorities: ["low"] } })).toMatchObject({
      count: 2,
      capped: false,
    });
    // 10,000 more rows straight into the table (the API would write an audit entry and a provenance record for
    // each), 1,000 a statement, counted after each: the count follows the table up to its cap. (PGlite runs in
    // this process: short statements, each followed by a request, keep its HTTP connection from idling out.)
    for (let from = 1; from <= 10_000; from += 1_000) {
      await s.db.exec(
        `INSERT INTO tasks (id, title, description, priority, priority_rank, risk_tier, mode, capability, spec, created_by)
         SELECT gen_random_uuid(), 'Bulk ' || g, '', 'low'::"TaskPriority", 0, 3, 'chore'::"TaskMode", '${IDLE}', '{}'::jsonb, 'test'
         FROM generate_series(${from}, ${from + 999}) g`,
      );
      const total = before.count + from + 999;
      expect(await s.http.tasks.count.query({})).toEqual({
        count: Math.min(total, 10_000),
        capped: total > 10_000,
        limit: 1000,
      });
    }
    // 10,006 tasks: the count stops at its cap.
    expect(await s.http.tasks.count.query({})).toEqual({ count: 10_000, capped: true, limit: 1000 });
    expect(await s.http.tasks.count.query({ filter: { priorities: ["critical"] } })).toMatchObject({
      count: 1,
      capped: false,
    });
    expect(await s.http.tasks.count.query({ filter: { text: "Bulk 999" } })).toMatchObject({
      count: 11, // Bulk 999 and Bulk 9990 … 9999
      capped: false,
    });
    // A bad filter is refused, with the problem named.
    await expect(s.http.tasks.count.query({ filter: { sort: "nonsense" as TaskSort } })).rejects.toThrow(/sort/i);
  }, 180_000);

  it("reads a page in last-update order from its index, on the first page and after a cursor", async () => {
    // Over 10,000 rows (the test above), each sort's first and next pages are an index scan, as the
    // list asks for them (ORDER BY updated_at, seq with the keyset condition), never a sort of the table.
    await s.db.exec("ANALYZE tasks");
    // The cursor of a page in the middle of the table: the list's keyset condition on its (updated_at, seq).
    const [mid] = await s.db.prisma.$queryRawUnsafe<{ at: string; seq: string }[]>(
      "SELECT to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS at, seq::text AS seq FROM tasks ORDER BY seq LIMIT 1 OFFSET 5000",
    );
    const at = `'${mid?.at}'::timestamptz`;
    for (const [dir, cmp] of [
      ["DESC", "<"],
      ["ASC", ">"],
    ] as const) {
      for (const where of ["", `WHERE updated_at ${cmp} ${at} OR (updated_at = ${at} AND seq ${cmp} ${mid?.seq})`]) {
        const plan = await s.db.prisma.$queryRawUnsafe<{ "QUERY PLAN": string }[]>(
          `EXPLAIN SELECT id FROM tasks ${where} ORDER BY updated_at ${dir}, seq ${dir} LIMIT 51`,
        );
        const text = plan.map((r) => r["QUERY PLAN"]).join("\n");
        expect(text, text).toMatch(/Index Scan( Backward)? using tasks_updated_at_seq_idx/);
        expect(text, text).not.toMatch(/\bSort\b/);
      }
    }
  }, 180_000);
});

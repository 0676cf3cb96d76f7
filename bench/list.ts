/**
 * `npm run bench:list`: how fast `tasks.list` answers over a large task table.
 *
 * Seeds BENCH_TASKS tasks (default 100,000) with one INSERT … SELECT FROM generate_series, then
 * times TaskService.list (the code behind `tasks.list`) for five queries, each against a
 * reference measured in the same run, in alternation with it:
 *   - first pages: the same SELECT as bare SQL through the raw driver, so the ratio is the ORM's cost;
 *   - the deep page (cursor followed 50 pages in): a bare SELECT … LIMIT … OFFSET of the same page,
 *     so the ratio is keyset against offset pagination.
 * Runs on in-memory PGlite, and on the Postgres server when BENCH_DATABASE_URL (or
 * TEST_DATABASE_URL) is set, in a schema of its own that is dropped at the end.
 */
import { randomBytes } from "node:crypto";
import os from "node:os";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import pino from "pino";
import { type Database, openDatabase } from "../src/server/db/database.js";
import { migrate } from "../src/server/db/migrate.js";
import { TaskEventHub } from "../src/server/events/task-event-hub.js";
import { decodeCursor } from "../src/server/tasks/cursor.js";
import { TaskService } from "../src/server/tasks/service.js";
import { type ParsedTaskFilter, taskFilterSchema } from "../src/shared/task-list.js";

const TASKS = positiveInt("BENCH_TASKS", 100_000);
const RUNS = positiveInt("BENCH_RUNS", 200);
const WARMUP = Math.min(20, RUNS);
const PAGE = 50;
const DEEP_PAGES = 50;
const TARGET_P95_MS = 20;
/** BENCH_EXPLAIN=1 prints every query's plan, not only those that miss the target. */
const EXPLAIN = process.env.BENCH_EXPLAIN === "1";
const POSTGRES_URL = process.env.BENCH_DATABASE_URL || process.env.TEST_DATABASE_URL || undefined;

function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`${name} must be a positive integer, got "${raw}".`);
    process.exit(2);
  }
  return n;
}

/**
 * Varied rows: hashint4 spreads each column independently, so filters combine as they would on
 * real data. Most tasks are finished (accepted), a few are live; created_at follows seq, one task
 * every 30 seconds back from now.
 */
export function seedSql(n: number): string {
  const pick = (values: string[], salt: number) =>
    `(ARRAY[${values.map((v) => `'${v}'`).join(",")}])[1 + mod(abs(hashint4(g + ${salt})), ${values.length})]`;
  const states = [
    ...Array(10).fill("accepted"),
    ...["queued", "queued", "running", "judging", "changes_requested", "rejected", "failed", "canceling", "canceled"],
    "accepted",
  ];
  const priorities = ["low", "medium", "medium", "medium", "high", "high", "critical"];
  const verbs = ["Fix", "Add", "Refactor", "Document", "Speed up", "Remove", "Test", "Harden"];
  const nouns = [
    "the parser",
    "login page",
    "billing export",
    "webhook retries",
    "search index",
    "audit log",
    "rate limiter",
    "CSV import",
    "dark mode",
    "session expiry",
    "PDF renderer",
    "cache warmer",
    "email digest",
  ];
  return `
INSERT INTO tasks (id, title, description, priority, priority_rank, risk_tier, mode, capability, spec,
                   state, attempt, created_by, created_at, updated_at, queued_at)
SELECT gen_random_uuid(), t.title, t.description, t.priority::"TaskPriority",
       array_position(ARRAY['low','medium','high','critical'], t.priority) - 1,
       t.risk_tier, t.mode::"TaskMode", 'script',
       jsonb_build_object('title', t.title, 'description', t.description, 'priority', t.priority,
                          'riskTier', t.risk_tier, 'mode', t.mode, 'capability', 'script',
                          'acceptanceCriteria', '[]'::jsonb, 'scope', '{"include":[],"exclude":[]}'::jsonb,
                          'budget', '{}'::jsonb, 'input', '{}'::jsonb),
       t.state::"TaskState", CASE WHEN t.state = 'queued' THEN 0 ELSE 1 END, 'bench', t.created_at, t.created_at, t.created_at
FROM (
  SELECT g,
         ${pick(verbs, 1)} || ' ' || ${pick(nouns, 2)} || ' (#' || g || ')' AS title,
         'Operators reported that ' || ${pick(nouns, 3)} || ' misbehaves under load; see ticket ' || g || '.' AS description,
         ${pick(priorities, 4)} AS priority,
         1 + mod(abs(hashint4(g + 5)), 3) AS risk_tier,
         ${pick(["feature", "fix", "refactor", "chore"], 6)} AS mode,
         ${pick(states, 7)} AS state,
         now() - ((${n} - g) * interval '30 seconds') AS created_at
  FROM generate_series(1, ${n}) AS g
  ORDER BY g
) AS t`;
}

const COLUMNS = `id, seq, title, priority, priority_rank, risk_tier, mode, capability, state, attempt, created_by, created_at, updated_at`;

interface Case {
  name: string;
  filter: ParsedTaskFilter;
  /** Set for the deep page: the cursor reached by following DEEP_PAGES pages. */
  deep?: boolean;
  reference: { label: string; sql: string; params: unknown[] };
  firstPage: boolean;
  /** Deep pages: the keyset SQL of the page, given the cursor's seq (what the service asks for, as bare SQL). */
  keysetSql?: string;
  /** Time `keysetSql` on the raw driver instead of the service: keyset vs offset, both raw. */
  raw?: boolean;
}

const filter = (f: object) => taskFilterSchema.parse(f);

function cases(): Case[] {
  const take = PAGE + 1;
  return [
    {
      name: "first page, no filter",
      filter: filter({}),
      firstPage: true,
      reference: {
        label: "raw SQL",
        sql: `SELECT ${COLUMNS} FROM tasks ORDER BY seq DESC LIMIT ${take}`,
        params: [],
      },
    },
    {
      name: "first page, state + priority",
      filter: filter({ states: ["queued", "failed"], priorities: ["high", "critical"] }),
      firstPage: true,
      reference: {
        label: "raw SQL",
        sql: `SELECT ${COLUMNS} FROM tasks WHERE state = ANY(string_to_array($1, ',')::"TaskState"[])
                AND priority = ANY(string_to_array($2, ',')::"TaskPriority"[])
              ORDER BY seq DESC LIMIT ${take}`,
        params: ["queued,failed", "high,critical"],
      },
    },
    {
      name: 'text search "webhook"',
      filter: filter({ text: "webhook" }),
      firstPage: true,
      reference: {
        label: "raw SQL",
        sql: `SELECT ${COLUMNS} FROM tasks WHERE title ILIKE $1 OR description ILIKE $1 ORDER BY seq DESC LIMIT ${take}`,
        params: ["%webhook%"],
      },
    },
    {
      // One matching row: the planner cannot stop early on the seq index and must use the trigram indexes.
      name: 'text search, one match ("ticket 4242.")',
      filter: filter({ text: "ticket 4242." }),
      firstPage: true,
      reference: {
        label: "raw SQL",
        sql: `SELECT ${COLUMNS} FROM tasks WHERE title ILIKE $1 OR description ILIKE $1 ORDER BY seq DESC LIMIT ${take}`,
        params: ["%ticket 4242.%"],
      },
    },
    {
      name: "priority sort",
      filter: filter({ sort: "priority_desc" }),
      firstPage: true,
      reference: {
        label: "raw SQL",
        sql: `SELECT ${COLUMNS} FROM tasks ORDER BY priority_rank DESC, seq DESC LIMIT ${take}`,
        params: [],
      },
    },
    {
      name: `deep page (page ${DEEP_PAGES + 1}, keyset)`,
      filter: filter({}),
      deep: true,
      firstPage: false,
      keysetSql: `SELECT ${COLUMNS} FROM tasks WHERE seq < $1 ORDER BY seq DESC LIMIT ${take}`,
      reference: {
        label: "raw OFFSET",
        sql: `SELECT ${COLUMNS} FROM tasks ORDER BY seq DESC LIMIT ${take} OFFSET ${PAGE * DEEP_PAGES}`,
        params: [],
      },
    },
    {
      name: `deep page (page ${DEEP_PAGES + 1}, raw keyset SQL)`,
      filter: filter({}),
      deep: true,
      firstPage: false,
      keysetSql: `SELECT ${COLUMNS} FROM tasks WHERE seq < $1 ORDER BY seq DESC LIMIT ${take}`,
      raw: true,
      reference: {
        label: "raw OFFSET",
        sql: `SELECT ${COLUMNS} FROM tasks ORDER BY seq DESC LIMIT ${take} OFFSET ${PAGE * DEEP_PAGES}`,
        params: [],
      },
    },
  ];
}

interface Stats {
  p50: number;
  p95: number;
  p99: number;
}

function percentiles(samples: number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN;
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99) };
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

interface Row {
  target: string;
  name: string;
  ours: Stats;
  reference: Stats;
  referenceLabel: string;
  firstPage: boolean;
  rows: number;
}

async function benchOne(kind: "pglite" | "postgres"): Promise<Row[]> {
  const schema = `bench_list_${process.pid}_${randomBytes(3).toString("hex")}`;
  const db: Database = kind === "postgres" ? await openDatabase({ url: POSTGRES_URL, schema }) : await openDatabase({});
  try {
    await migrate(db);
    const seedStart = performance.now();
    await db.exec(seedSql(TASKS));
    await db.exec("ANALYZE tasks");
    const seedMs = performance.now() - seedStart;
    const [count] = await db.query<{ n: string }>("SELECT count(*)::text AS n FROM tasks");
    console.log(
      `${kind}: seeded ${Number(count?.n).toLocaleString("en")} tasks in ${(seedMs / 1000).toFixed(1)} s (insert + analyze)`,
    );

    const service = new TaskService(db, new TaskEventHub(db, pino({ level: "silent" })));
    const results: Row[] = [];
    for (const c of cases()) {
      let cursor: string | null = null;
      if (c.deep) {
        for (let page = 0; page < DEEP_PAGES; page++) {
          cursor = (await service.list(c.filter, PAGE, cursor)).nextCursor;
          if (!cursor) throw new Error(`Only ${page + 1} pages of ${PAGE}: raise BENCH_TASKS for the deep page.`);
        }
      }
      const keysetSql = c.keysetSql;
      const keysetParams = cursor ? [decodeCursor(cursor, false).seq.toString()] : [];
      const run =
        keysetSql && c.raw
          ? async () => (await db.query<{ id: string }>(keysetSql, keysetParams)).slice(0, PAGE)
          : async () => (await service.list(c.filter, PAGE, cursor)).items;
      // The measured page and the reference page must be the same rows, or the comparison means nothing.
      const ourPage = await run();
      const refRows = await db.query<{ id: string }>(c.reference.sql, c.reference.params);
      const ids = (rows: Array<{ id: string }>) => rows.map((r) => r.id).join();
      if (ids(ourPage) !== ids(refRows.slice(0, PAGE))) {
        throw new Error(`${kind} / ${c.name}: the measured query and the reference returned different rows.`);
      }

      const ours: number[] = [];
      const reference: number[] = [];
      for (let i = 0; i < WARMUP + RUNS; i++) {
        const a = await time(run);
        const b = await time(() => db.query(c.reference.sql, c.reference.params));
        if (i >= WARMUP) {
          ours.push(a);
          reference.push(b);
        }
      }
      results.push({
        target: kind,
        name: c.name,
        ours: percentiles(ours),
        reference: percentiles(reference),
        referenceLabel: c.reference.label,
        firstPage: c.firstPage,
        rows: ourPage.length,
      });
      const p95 = percentiles(ours).p95;
      if (p95 > TARGET_P95_MS || EXPLAIN) {
        const [sql, params] = keysetSql ? [keysetSql, keysetParams] : [c.reference.sql, c.reference.params];
        const plan = await db.query<Record<string, string>>(`EXPLAIN ANALYZE ${sql}`, params);
        const why = p95 > TARGET_P95_MS ? `p95 ${p95.toFixed(2)} ms misses the target` : `p95 ${p95.toFixed(2)} ms`;
        console.log(`\n${kind} / ${c.name}: ${why}; plan of its SQL:`);
        for (const line of plan) console.log(`  ${Object.values(line)[0]}`);
      }
    }
    return results;
  } finally {
    if (kind === "postgres") await db.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await db.close();
  }
}

function table(rows: Row[]): string {
  const ms = (x: number) => x.toFixed(2);
  const header = [
    "database",
    "query",
    "rows",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "reference",
    "ref p50",
    "ref p95",
    "ref p99",
    "ratio p50",
    "target p95 ≤ 20 ms",
  ];
  const body = rows.map((r) => [
    r.target,
    r.name,
    String(r.rows),
    ms(r.ours.p50),
    ms(r.ours.p95),
    ms(r.ours.p99),
    r.referenceLabel,
    ms(r.reference.p50),
    ms(r.reference.p95),
    ms(r.reference.p99),
    `${(r.ours.p50 / r.reference.p50).toFixed(2)}×`,
    r.ours.p95 <= TARGET_P95_MS ? "met" : `MISSED${r.firstPage ? "" : " (not a first page)"}`,
  ]);
  const lines = [header, header.map(() => "---"), ...body].map((cells) => `| ${cells.join(" | ")} |`);
  return lines.join("\n");
}

async function main() {
  const cpus = os.cpus();
  console.log(
    `bench:list: ${TASKS.toLocaleString("en")} tasks, ${RUNS} timed runs per query after ${WARMUP} warm-up, page size ${PAGE}`,
  );
  console.log(
    `machine: ${cpus.length} cores (${cpus[0]?.model.trim() ?? "unknown CPU"}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}, load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")} (other work shares these cores)`,
  );
  const kinds: Array<"pglite" | "postgres"> = POSTGRES_URL ? ["pglite", "postgres"] : ["pglite"];
  if (!POSTGRES_URL)
    console.log("Postgres server: skipped (set BENCH_DATABASE_URL or TEST_DATABASE_URL to include it)");
  const rows: Row[] = [];
  for (const kind of kinds) rows.push(...(await benchOne(kind)));
  console.log(`\n${table(rows)}\n`);
  console.log(
    "ratio p50 = tasks.list (TaskService.list through Prisma) ÷ reference. First pages: reference is the same SELECT as bare SQL on the raw driver (ORM overhead). Deep page: reference is the same page fetched with LIMIT/OFFSET on the raw driver; the raw-keyset row times bare keyset SQL, so its ratio is keyset vs offset alone.",
  );
  const missed = rows.filter((r) => r.firstPage && r.ours.p95 > TARGET_P95_MS);
  console.log(
    missed.length
      ? `First-page target missed: ${missed.map((r) => `${r.target} / ${r.name}`).join("; ")}`
      : "First-page target (p95 ≤ 20 ms) met on every query.",
  );
}

// Run when invoked as a script; importing it (to reuse the seed) runs nothing.
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}

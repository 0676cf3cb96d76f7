/**
 * `npm run bench:list`: how fast `tasks.list` answers over a large task table.
 *
 * Seeds BENCH_TASKS tasks (default 100,000) with one INSERT … SELECT FROM generate_series (the
 * secondary indexes are dropped for the load and rebuilt from their own definitions after it, then
 * VACUUM ANALYZE), then times TaskService.list (the code behind `tasks.list`) for each query below,
 * each against a reference measured in the same run, in alternation with it:
 *   - first pages: the same SELECT as bare SQL through the raw driver, so the ratio is the ORM's cost;
 *   - deep pages: the same page fetched with LIMIT … OFFSET on the raw driver, timed against both the
 *     service and the service's keyset SELECT run bare (whose ratio is keyset against offset alone).
 *     The deep page is the middle of the (filtered) list: its cursor is the
 *     last row of the page before, read once with OFFSET and encoded as the service encodes cursors;
 *     the bench checks that it equals the `nextCursor` the service returns for that page, so it is
 *     the cursor a client holds after following every page up to the middle.
 * A one-match search is also timed as the single ILIKE on search_text, against the service's SQL.
 * Databases: BENCH_DATABASES=pglite,postgres (default: PGlite, plus the Postgres server when
 * BENCH_DATABASE_URL or TEST_DATABASE_URL is set). On the server the bench works in a schema of its
 * own that is dropped at the end.
 */
import { randomBytes } from "node:crypto";
import os from "node:os";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { type Database, openDatabase } from "../src/server/db/database.js";
import { migrate } from "../src/server/db/migrate.js";
import { encodeCursor } from "../src/server/tasks/cursor.js";
import { escapeLike, SearchSample, searchPieces } from "../src/server/tasks/search.js";
import { TaskService } from "../src/server/tasks/service.js";
import { type ParsedTaskFilter, taskFilterSchema } from "../src/shared/task-list.js";
import { positiveInt } from "./lib/env.js";

const TASKS = positiveInt("BENCH_TASKS", 100_000);
/** A term one seeded row holds ("see ticket N."): ticket 4242 as in every recorded run, or one that exists in a smaller seed. */
const RARE = `ticket ${TASKS >= 4242 ? 4242 : Math.ceil(TASKS / 2)}.`;
const RUNS = positiveInt("BENCH_RUNS", 200);
const WARMUP = Math.min(20, RUNS);
const PAGE = 50;
const TARGET_P95_MS = 20;
/** BENCH_EXPLAIN=1 prints every query's plan, not only those that miss the target. */
const EXPLAIN = process.env.BENCH_EXPLAIN === "1";
const POSTGRES_URL = process.env.BENCH_DATABASE_URL || process.env.TEST_DATABASE_URL || undefined;
type Kind = "pglite" | "postgres";
const KINDS = databases();

function databases(): Kind[] {
  const raw = process.env.BENCH_DATABASES?.trim();
  if (!raw) return POSTGRES_URL ? ["pglite", "postgres"] : ["pglite"];
  const kinds = [...new Set(raw.split(",").map((k) => k.trim()))];
  const bad = kinds.filter((k) => k !== "pglite" && k !== "postgres");
  if (bad.length || kinds.length === 0) {
    console.error(`BENCH_DATABASES is a comma list of pglite and postgres, got "${raw}".`);
    process.exit(2);
  }
  if (kinds.includes("postgres") && !POSTGRES_URL) {
    console.error("BENCH_DATABASES names postgres: set BENCH_DATABASE_URL or TEST_DATABASE_URL to the server.");
    process.exit(2);
  }
  return kinds as Kind[];
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
const TAKE = PAGE + 1;

/** A filter as bare SQL for the raw driver: a WHERE condition over $1…$n and its parameters. */
interface RawFilter {
  where: string;
  params: unknown[];
}

interface Case {
  name: string;
  filter: ParsedTaskFilter;
  raw: RawFilter;
  /** First pages are timed against the same SELECT as bare SQL; deep pages against OFFSET. */
  kind: "first" | "deep";
  /** First pages only: time this bare SQL instead of the service, against the service's SQL. */
  alternative?: RawFilter;
  orderBy?: string;
}

const filter = (f: object) => taskFilterSchema.parse(f);
const NONE: RawFilter = { where: "TRUE", params: [] };
const STATE_PRIORITY: RawFilter = {
  where: `state = ANY(string_to_array($1, ',')::"TaskState"[]) AND priority = ANY(string_to_array($2, ',')::"TaskPriority"[])`,
  params: ["queued,failed", "high,critical"],
};
const stateAndPriority = { states: ["queued", "failed"], priorities: ["high", "critical"] };
/**
 * The service's text filter (textWhere) as bare SQL: one word is one ILIKE on search_text (title,
 * chr(31), description); several words are one ILIKE per piece, rarest first by the planner's sample,
 * and the whole term on title or description.
 */
function search(term: string, sample: string[]): RawFilter {
  const like = (s: string) => `%${escapeLike(s)}%`;
  const pieces = searchPieces(term, sample);
  if (pieces.length <= 1) return oneIlike(term);
  const n = pieces.length + 1;
  return {
    where: [
      ...pieces.map((_, i) => `search_text ILIKE $${i + 1}`),
      `(title ILIKE $${n} OR description ILIKE $${n})`,
    ].join(" AND "),
    params: [...pieces.map(like), like(term)],
  };
}
const oneIlike = (term: string): RawFilter => ({ where: "search_text ILIKE $1", params: [`%${escapeLike(term)}%`] });

/** `sample`: the planner's sample of search_text, which orders a multi-word term's pieces (as in the service). */
function cases(sample: string[]): Case[] {
  return [
    { name: "first page, no filter", filter: filter({}), raw: NONE, kind: "first" },
    { name: "first page, state + priority", filter: filter(stateAndPriority), raw: STATE_PRIORITY, kind: "first" },
    // Frequent term: the planner walks the seq index backwards and stops after one page.
    {
      name: 'text search "webhook"',
      filter: filter({ text: "webhook" }),
      raw: search("webhook", sample),
      kind: "first",
    },
    // One matching row: nothing to stop early on, so the trigram index has to find it. "ticket" is
    // in every row, "4242." in about a hundred.
    {
      name: `text search, one match ("${RARE}")`,
      filter: filter({ text: RARE }),
      raw: search(RARE, sample),
      kind: "first",
    },
    // The same term as a single ILIKE on search_text (bare SQL), against the service's SQL bare.
    {
      name: `text search, one match, single ILIKE (bare SQL)`,
      filter: filter({ text: RARE }),
      raw: search(RARE, sample),
      alternative: oneIlike(RARE),
      kind: "first",
    },
    {
      name: "priority sort",
      filter: filter({ sort: "priority_desc" }),
      raw: NONE,
      kind: "first",
      orderBy: "priority_rank DESC, seq DESC",
    },
    // Deep pages: the service and its keyset SQL bare are both timed against the same OFFSET runs.
    { name: "deep page, no filter", filter: filter({}), raw: NONE, kind: "deep" },
    {
      name: "deep page, state + priority",
      filter: filter(stateAndPriority),
      raw: STATE_PRIORITY,
      kind: "deep",
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
  /** False for a comparison row (a query shape the service does not use): shown, not judged. */
  judged: boolean;
  rows: number;
}

/**
 * Loads the seed with the secondary indexes out of the way, then rebuilds exactly the indexes the
 * migrations made (their definitions are read from pg_indexes first, and checked after) and runs
 * VACUUM ANALYZE, so the planner sees a table like one that grew over time: statistics, visibility map.
 */
async function seed(db: Database, kind: Kind) {
  const indexDefs = async () =>
    (
      await db.query<{ name: string; def: string }>(
        `SELECT i.indexname AS name, i.indexdef AS def FROM pg_indexes i
          WHERE i.schemaname = current_schema() AND i.tablename = 'tasks'
            AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname
                              AND c.connamespace = current_schema()::regnamespace)
          ORDER BY i.indexname`,
      )
    ).filter((i) => i.name !== "tasks_seq_key");
  const before = await indexDefs();
  const timings: string[] = [];
  const step = async (label: string, fn: () => Promise<unknown>) => {
    const ms = await time(fn);
    timings.push(`${label} ${(ms / 1000).toFixed(1)} s`);
  };
  await db.session(async (conn) => {
    // Session settings for the index builds (one connection on the server; PGlite has only one).
    await conn.exec("SET maintenance_work_mem = '256MB'");
    await step("drop indexes", () => conn.exec(before.map((i) => `DROP INDEX "${i.name}";`).join("\n")));
    await step("insert", () => conn.exec(seedSql(TASKS)));
    await step("rebuild indexes", async () => {
      for (const i of before) await conn.exec(i.def);
    });
    await step("VACUUM ANALYZE", () => conn.exec("VACUUM ANALYZE tasks"));
  });
  const after = await indexDefs();
  if (JSON.stringify(after) !== JSON.stringify(before)) {
    throw new Error(`${kind}: the rebuilt indexes differ from the migrated ones.`);
  }
  const [count] = await db.query<{ n: string }>("SELECT count(*)::text AS n FROM tasks");
  console.log(
    `${kind}: seeded ${Number(count?.n).toLocaleString("en")} tasks (${timings.join(", ")}); indexes on tasks: ${after.map((i) => i.name).join(", ")}`,
  );
}

async function benchOne(kind: Kind): Promise<Row[]> {
  const schema = `bench_list_${process.pid}_${randomBytes(3).toString("hex")}`;
  const db: Database = kind === "postgres" ? await openDatabase({ url: POSTGRES_URL, schema }) : await openDatabase({});
  try {
    await migrate(db);
    await seed(db, kind);

    const service = new TaskService(db);
    const sample = await new SearchSample(db).get();
    console.log(
      `${kind}: search pieces of "${RARE}", in query order: ${searchPieces(RARE, sample)
        .map((p) => JSON.stringify(p))
        .join(", ")} (from ${sample.length} sampled search_text values)`,
    );
    const results: Row[] = [];
    for (const c of cases(sample)) {
      const orderBy = c.orderBy ?? "seq DESC";
      const select = (extra = "") => `SELECT ${COLUMNS} FROM tasks WHERE ${c.raw.where} ORDER BY ${orderBy} ${extra}`;
      let cursor: string | null = null;
      let reference = { label: "raw SQL", sql: select(`LIMIT ${TAKE}`), params: c.raw.params };
      let measuredSql = reference.sql;
      let measuredParams = c.raw.params;
      let pageNote = "";
      if (c.kind === "deep") {
        // The middle of the list, on a page boundary: page `pages + 1` starts at row `offset`.
        const [total] = await db.query<{ n: string }>(
          `SELECT count(*)::text AS n FROM tasks WHERE ${c.raw.where}`,
          c.raw.params,
        );
        const pages = Math.floor(Number(total?.n) / 2 / PAGE);
        if (pages < 2) throw new Error(`${kind} / ${c.name}: too few rows for a deep page; raise BENCH_TASKS.`);
        const offset = pages * PAGE;
        const [last] = await db.query<{ s: string }>(
          // Not `AS seq`: ORDER BY would sort by the text alias.
          `SELECT seq::text AS s FROM tasks WHERE ${c.raw.where} ORDER BY seq DESC LIMIT 1 OFFSET ${offset - 1}`,
          c.raw.params,
        );
        cursor = encodeCursor({ seq: BigInt(last?.s ?? "0") });
        // The same cursor the service hands out at the end of the page before.
        const [before] = await db.query<{ s: string }>(
          `SELECT seq::text AS s FROM tasks WHERE ${c.raw.where} ORDER BY seq DESC LIMIT 1 OFFSET ${offset - PAGE - 1}`,
          c.raw.params,
        );
        const previous = await service.list(c.filter, PAGE, encodeCursor({ seq: BigInt(before?.s ?? "0") }));
        if (previous.nextCursor !== cursor) {
          throw new Error(
            `${kind} / ${c.name}: the service's cursor for page ${pages} is not the one taken by OFFSET.`,
          );
        }
        reference = { label: "raw OFFSET", sql: select(`LIMIT ${TAKE} OFFSET ${offset}`), params: c.raw.params };
        const n = c.raw.params.length + 1;
        measuredSql = `SELECT ${COLUMNS} FROM tasks WHERE ${c.raw.where} AND seq < $${n} ORDER BY seq DESC LIMIT ${TAKE}`;
        measuredParams = [...c.raw.params, last?.s];
        pageNote = ` (page ${(pages + 1).toLocaleString("en")} of ${Math.ceil(Number(total?.n) / PAGE).toLocaleString("en")}, OFFSET ${offset.toLocaleString("en")})`;
      }
      if (c.alternative) {
        measuredSql = `SELECT ${COLUMNS} FROM tasks WHERE ${c.alternative.where} ORDER BY ${orderBy} LIMIT ${TAKE}`;
        measuredParams = c.alternative.params;
        reference = { ...reference, label: "service's SQL, bare" };
      }
      const bareSql = measuredSql;
      const bareParams = measuredParams;
      const bare = async () => (await db.query<{ id: string }>(bareSql, bareParams)).slice(0, PAGE);
      const viaService = async () => (await service.list(c.filter, PAGE, cursor)).items;
      // What is timed against the reference: the service; for a deep page also its keyset SQL bare.
      const measured = c.alternative
        ? [{ name: c.name, run: bare }]
        : c.kind === "deep"
          ? [
              { name: `${c.name}, keyset${pageNote}`, run: viaService },
              { name: `${c.name}, keyset SQL bare${pageNote}`, run: bare },
            ]
          : [{ name: c.name, run: viaService }];
      // The measured pages and the reference page must be the same rows, or the comparison means nothing.
      const refRows = await db.query<{ id: string }>(reference.sql, reference.params);
      const ids = (rows: Array<{ id: string }>) => rows.map((r) => r.id).join();
      const pageRows: number[] = [];
      for (const m of measured) {
        const page = await m.run();
        if (page.length === 0 || ids(page) !== ids(refRows.slice(0, PAGE))) {
          throw new Error(`${kind} / ${m.name}: the measured query and the reference returned different rows.`);
        }
        pageRows.push(page.length);
      }

      const samples = measured.map(() => [] as number[]);
      const refs: number[] = [];
      for (let i = 0; i < WARMUP + RUNS; i++) {
        const took = [];
        for (const m of measured) took.push(await time(m.run));
        const b = await time(() => db.query(reference.sql, reference.params));
        if (i >= WARMUP) {
          took.forEach((t, k) => {
            samples[k]?.push(t);
          });
          refs.push(b);
        }
      }
      const refStats = percentiles(refs);
      measured.forEach((m, k) => {
        results.push({
          target: kind,
          name: m.name,
          ours: percentiles(samples[k] ?? []),
          reference: refStats,
          referenceLabel: reference.label,
          judged: !c.alternative,
          rows: pageRows[k] ?? 0,
        });
      });
      const worst = Math.max(...samples.map((x) => percentiles(x).p95));
      if (worst > TARGET_P95_MS || EXPLAIN) {
        const plan = await db.query<Record<string, string>>(`EXPLAIN ANALYZE ${measuredSql}`, measuredParams);
        const why =
          worst <= TARGET_P95_MS ? "" : c.alternative ? "over the target (comparison row)" : "misses the target";
        console.log(`\n${kind} / ${c.name}: p95 ${worst.toFixed(2)} ms ${why}; plan of its SQL:`);
        for (const line of plan) console.log(`  ${Object.values(line)[0]}`);
      }
    }
    return results;
  } finally {
    if (kind === "postgres") await db.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await db.close();
  }
}

/** Two decimals, or two significant digits below 0.1 (keyset against a deep OFFSET is far below). */
const ratio = (x: number) => `${x < 0.1 ? x.toPrecision(2) : x.toFixed(2)}×`;

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
    ratio(r.ours.p50 / r.reference.p50),
    !r.judged ? "(comparison)" : r.ours.p95 <= TARGET_P95_MS ? "met" : "MISSED",
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
  if (!KINDS.includes("postgres"))
    console.log("Postgres server: skipped (set BENCH_DATABASE_URL or TEST_DATABASE_URL to include it)");
  if (!KINDS.includes("pglite")) console.log("PGlite: skipped (BENCH_DATABASES)");
  const started = performance.now();
  const rows: Row[] = [];
  for (const kind of KINDS) rows.push(...(await benchOne(kind)));
  console.log(`\n${table(rows)}\n`);
  console.log(
    "ratio p50 = measured ÷ reference. First pages: tasks.list (TaskService.list through Prisma) against the same SELECT as bare SQL on the raw driver (the ORM's cost). Deep pages: the same page fetched with LIMIT/OFFSET on the raw driver, timed once for both rows; the keyset row is the service, the keyset-SQL-bare row is its keyset SELECT on the raw driver, so its ratio is keyset against offset alone.",
  );
  const missed = rows.filter((r) => r.judged && r.ours.p95 > TARGET_P95_MS);
  console.log(
    missed.length
      ? `Target p95 ≤ ${TARGET_P95_MS} ms missed: ${missed.map((r) => `${r.target} / ${r.name}`).join("; ")}`
      : `Target p95 ≤ ${TARGET_P95_MS} ms met by every query.`,
  );
  console.log(
    `run took ${((performance.now() - started) / 1000).toFixed(0)} s; load average at the end ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );
}

// Run when invoked as a script; importing it (to reuse the seed) runs nothing.
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}

/**
 * End-to-end throughput of the agency against pg-boss 12 and DBOS Transact 5 on the same Postgres
 * server, through the same no-op HTTP worker, in the same run; two agency processes against one; then
 * the agency's latency at light load.
 *
 *   npm run bench:throughput     (BENCH_N=1000, BENCH_ROUNDS=3, BENCH_WARMUP=500, BENCH_CONCURRENCY=200,
 *                                 BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test,
 *                                 BENCH_SIDES=agency,pg-boss,dbos-batch,dbos-single,agency-2p (which sides run; `none`
 *                                 for the light-load latency alone),
 *                                 BENCH_LATENCY_N=60 tasks at one per BENCH_LATENCY_INTERVAL_MS=1000 (BENCH_LATENCY=0 skips),
 *                                 BENCH_FLOOR=0 skips the storage floor,
 *                                 BENCH_PROFILE=1 writes a CPU profile of each agency process to bench/profiles/)
 *
 * Agency: N tasks created, dispatched, executed over HTTP, judged and accepted, with their events,
 * attempts, verdicts, audit entries and provenance records (one signed checkpoint per batch) committed; the clock stops when
 * the last task is `accepted`. Each agency process is a child process running the real services.
 * pg-boss: the same N jobs inserted in one call, fetched (two fetch loops of CONCURRENCY / 2 jobs), each sent
 * to the worker, completed; the clock stops when the last job is `completed`.
 * DBOS (bench/lib/dbos-child.ts, a child process): one workflow per task, one step that POSTs the
 * agency's request body to the worker, started through a DBOS queue with the agency's concurrency and
 * a 50 ms polling interval; "batch" enqueues each 1,000 workflows in one transaction, "single" starts
 * each with its own `DBOS.startWorkflow`. The clock stops when the last workflow is `SUCCESS`.
 * pg-boss and DBOS send the worker the agency's request body (bench/lib/request-body.ts).
 * Rounds alternate the order of the sides (odd rounds as listed, even rounds reversed).
 * The worker runs in a process of its own. CPU time is reported per task for the agency (or pg-boss,
 * or DBOS) process and for its Postgres backends (told apart by application_name), which is what
 * bounds the rates on a 2-core machine; each line carries the 1-minute load average at its start.
 * Overhead per task = (finished − created) − the worker's own time for that request.
 * Latency at light load: one agency process, tasks created one at a time (`tasks.create`, as the API
 * does) one per interval; submit → dispatched is from the start of the create call (in the agency
 * process) to the request's arrival in the worker process, on one clock (bench/lib/clock.ts), printed
 * beside the worker's own time and the same span as stored (attempt started_at − task created_at).
 * Last, the storage floor (bench/lib/storage-floor.ts): the same rows per task written by bare SQL,
 * with what each table costs the Postgres server, against pg-boss's whole cost per job.
 */
import { type ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { request } from "undici";
import { openDatabase } from "../src/server/db/database.js";
import { positiveInt } from "./lib/env.js";
import { executeRequest } from "./lib/request-body.js";
import { storageFloor } from "./lib/storage-floor.js";

const N = positiveInt("BENCH_N", 1000);
const ROUNDS = positiveInt("BENCH_ROUNDS", 3);
const CONCURRENCY = positiveInt("BENCH_CONCURRENCY", 200);
const PGBOSS_LOCAL = positiveInt("BENCH_PGBOSS_LOCAL", 2);
/** Tasks (jobs) run before the clock starts, so both sides are measured with warm JIT and pools. */
const WARMUP = positiveInt("BENCH_WARMUP", 500);
const URL_ = process.env.BENCH_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/test";
const PROFILE = process.env.BENCH_PROFILE === "1";
const LATENCY_N = process.env.BENCH_LATENCY === "0" ? 0 : positiveInt("BENCH_LATENCY_N", 60);
const LATENCY_INTERVAL_MS = positiveInt("BENCH_LATENCY_INTERVAL_MS", 1000);
const FLOOR = process.env.BENCH_FLOOR !== "0";
const SIDE_NAMES = ["agency", "pg-boss", "dbos-batch", "dbos-single", "agency-2p"] as const;
type Side = (typeof SIDE_NAMES)[number];
const SIDES: Side[] = (() => {
  const raw = process.env.BENCH_SIDES;
  if (!raw) return [...SIDE_NAMES];
  if (raw === "none") return [];
  const picked = raw.split(",").map((x) => x.trim());
  const unknown = picked.filter((x) => !(SIDE_NAMES as readonly string[]).includes(x));
  if (unknown.length) {
    console.error(`BENCH_SIDES: unknown side(s) ${unknown.join(", ")}; known: ${SIDE_NAMES.join(", ")}`);
    process.exit(2);
  }
  return SIDE_NAMES.filter((x) => picked.includes(x));
})();
const here = path.dirname(new URL(import.meta.url).pathname);
// The peers are benchmark-only dependencies of bench/package.json, kept out of the project's own install.
const peers = [
  ...(SIDES.includes("pg-boss") ? ["pg-boss"] : []),
  ...(SIDES.some((x) => x.startsWith("dbos")) ? ["@dbos-inc/dbos-sdk"] : []),
];
const missingPeers = peers.filter((name) => !fs.existsSync(path.join(here, "node_modules", name, "package.json")));
if (missingPeers.length) {
  console.error(
    `${missingPeers.join(" and ")} not installed: run \`npm run bench:setup\` (npm --prefix bench ci) first, ` +
      "or pick sides without them (BENCH_SIDES=agency,agency-2p).",
  );
  process.exit(2);
}

/** A forked TypeScript child spoken to over IPC. */
class Child {
  private readonly proc: ChildProcess;
  private readonly waiting = new Map<string, (m: Record<string, unknown>) => void>();
  private readonly exited: Promise<number | null>;

  constructor(file: string, env: Record<string, string>, execArgv: string[] = []) {
    this.proc = fork(path.join(here, file), [], {
      env: { ...process.env, ...env },
      execArgv: ["--import", "tsx", ...execArgv],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    this.proc.on("message", (m: Record<string, unknown>) => {
      const w = this.waiting.get(m.type as string);
      this.waiting.delete(m.type as string);
      w?.(m);
    });
    this.exited = new Promise((resolve) => this.proc.on("exit", (code) => resolve(code)));
  }

  /** Sends `msg` (if any) and resolves with the next message of type `reply`; rejects if the child exits first. */
  ask<T = Record<string, unknown>>(reply: string, msg?: object): Promise<T> {
    const answer = new Promise<T>((resolve) =>
      this.waiting.set(reply, resolve as (m: Record<string, unknown>) => void),
    );
    if (msg) {
      if (!this.proc.connected) return Promise.reject(new Error(`a bench child (${reply}) is gone`));
      this.proc.send(msg);
    }
    return Promise.race([
      answer,
      this.exited.then((code) => {
        throw new Error(`a bench child (${reply}) exited with code ${code}`);
      }),
    ]);
  }

  async close(): Promise<void> {
    if (this.proc.connected) this.proc.disconnect();
    await Promise.race([this.exited, new Promise((r) => setTimeout(r, 5000))]);
    this.proc.kill("SIGKILL");
  }
}

/** CPU ms of one process from /proc (utime + stime), or null once it has exited. */
function processCpuMs(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 of stat(5): 11 and 12 after pid and comm; USER_HZ is 100
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return null;
  }
}

/**
 * CPU time of the Postgres backends serving one side of the bench, told apart by application_name,
 * so other work on the same server does not count. Sampled while the side runs: a backend's figure is
 * the last one read before it exited (a pool may close idle connections).
 */
class BackendCpu {
  private readonly start = new Map<number, number>();
  private readonly last = new Map<number, number>();

  constructor(
    private readonly db: Awaited<ReturnType<typeof openDatabase>>,
    private readonly app: string,
  ) {}

  async sample(): Promise<void> {
    const rows = await this.db.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity WHERE application_name LIKE $1`,
      [`${this.app}%`],
    );
    for (const { pid } of rows) {
      const ms = processCpuMs(pid);
      if (ms === null) continue;
      if (!this.start.has(pid)) this.start.set(pid, ms);
      this.last.set(pid, ms);
    }
  }

  /** From now on: what the backends used so far is not counted. */
  restart(): void {
    for (const [pid, ms] of this.last) this.start.set(pid, ms);
  }

  /** Call `sample` once before the timed part starts (its backends' CPU so far is not counted). */
  totalMs(): number {
    let total = 0;
    for (const [pid, ms] of this.last) total += ms - (this.start.get(pid) ?? 0);
    return total;
  }
}

/** The connection string with an application_name, for BackendCpu. */
function withApp(url: string, app: string): string {
  const u = new URL(url);
  u.searchParams.set("application_name", app);
  return u.toString();
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

interface Outcome {
  rate: number;
  seconds: number;
  overhead: number[];
  /** CPU ms per task: the agency processes (or the pg-boss or DBOS process), and the Postgres server. */
  appCpu: number;
  pgCpu: number;
  /** The no-op worker process's CPU ms per task. */
  workerCpu: number;
  /** The 1-minute load average when the timed part started, and when it ended. */
  load: number;
  loadAfter: number;
  note: string;
}

type Db = Awaited<ReturnType<typeof openDatabase>>;

async function waitFor(
  db: Db,
  sql: string,
  params: unknown[],
  n: number,
  cpu: BackendCpu,
  what = "tasks did not end accepted",
) {
  for (;;) {
    await cpu.sample();
    const [row] = await db.query<{ done: number; bad: number }>(sql, params);
    if ((row?.bad ?? 0) > 0) throw new Error(`${row?.bad} ${what}`);
    if ((row?.done ?? 0) >= n) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface WorkerTimes {
  /** How long the worker held each request, by task (job, workflow) id. */
  held: Record<string, number>;
  /** When each request reached the worker process (bench/lib/clock.ts). */
  received: Record<string, number>;
  /** The worker process's CPU ms since the last call. */
  cpuMs: number;
}

async function workerTimes(worker: Child): Promise<WorkerTimes> {
  const t = await worker.ask<{ ms: Record<string, number>; received: Record<string, number>; cpuMs: number }>("times", {
    type: "times",
  });
  return { held: t.ms, received: t.received, cpuMs: t.cpuMs };
}

const load1 = () => os.loadavg()[0] as number;

/** The CPU ms (user + system) a child reports of itself. */
async function childCpu(children: Child[]): Promise<number[]> {
  const cpu = await Promise.all(
    children.map((c) => c.ask<{ userMs: number; systemMs: number }>("cpu", { type: "cpu" })),
  );
  return cpu.map((c) => c.userMs + c.systemMs);
}

/** `processes` agency child processes on a fresh schema, started one at a time (the first migrates). */
async function startAgency(workerUrl: string, processes: number, label: string) {
  const schema = `bench_agency_${randomBytes(4).toString("hex")}`;
  const env = {
    BENCH_DATABASE_URL: withApp(URL_, `${schema}_app`),
    BENCH_SCHEMA: schema,
    BENCH_WORKER_URL: workerUrl,
    BENCH_CONCURRENCY: String(CONCURRENCY),
    AGENCY_MASTER_KEY: randomBytes(32).toString("base64"),
  };
  const profileDir = path.join(here, "profiles");
  const children: Child[] = [];
  const db = await openDatabase({ url: URL_, schema });
  const close = async () => {
    await Promise.all(children.map((c) => c.ask("stopped", { type: "stop" }).catch(() => undefined)));
    await Promise.all(children.map((c) => c.close()));
    await db.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await db.close();
  };
  try {
    for (let i = 0; i < processes; i++) {
      const execArgv = PROFILE
        ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=agency-${label}-${i}.cpuprofile`]
        : [];
      const child = new Child("lib/agency-child.ts", env, execArgv);
      children.push(child);
      await child.ask("ready");
    }
  } catch (err) {
    await close();
    throw err;
  }
  // Each process is handed its share, as a load balancer would spread submissions.
  const submit = (count: number, prefix: string) => {
    const share = Math.ceil(count / processes);
    return Promise.all(
      children.map((c, i) =>
        c.ask("submitted", {
          type: "submit",
          prefix,
          count: Math.max(0, Math.min(share, count - i * share)),
          offset: i * share,
        }),
      ),
    );
  };
  return { schema, db, children, submit, backends: new BackendCpu(db, `${schema}_app`), close };
}

const ACCEPTED = `SELECT count(*) FILTER (WHERE state = 'accepted')::int AS done,
          count(*) FILTER (WHERE state IN ('failed', 'rejected', 'changes_requested'))::int AS bad FROM tasks`;

async function benchAgency(worker: Child, workerUrl: string, processes: number, round: number): Promise<Outcome> {
  const a = await startAgency(workerUrl, processes, `${processes}p-r${round}`);
  const { db, children, backends } = a;
  try {
    await a.submit(WARMUP, "warm-up");
    await waitFor(db, ACCEPTED, [], WARMUP, backends);
    await workerTimes(worker);
    await backends.sample();
    backends.restart();
    const cpu0 = await childCpu(children);
    const load = load1();
    const t0 = performance.now();
    await a.submit(N, "bench");
    await waitFor(db, ACCEPTED, [], WARMUP + N, backends);
    const seconds = (performance.now() - t0) / 1000;
    const loadAfter = load1();
    await backends.sample();
    const pgCpu = backends.totalMs();
    const cpu1 = await childCpu(children);
    const appCpu = cpu1.reduce((s, c, i) => s + c - (cpu0[i] as number), 0);
    const { held, cpuMs: workerCpu } = await workerTimes(worker);
    const rows = await db.query<{ id: string; created: Date; finished: Date }>(
      `SELECT t.id, t.created_at AS created, a.finished_at AS finished
         FROM tasks t JOIN attempts a ON a.task_id = t.id WHERE t.title LIKE 'bench %'`,
    );
    const [counts] = await db.query<{ events: number; verdicts: number; audit: number; provenance: number }>(
      `SELECT (SELECT count(*) FROM task_events)::int AS events,
              (SELECT count(*) FROM attempts WHERE verdict = 'accept')::int AS verdicts,
              (SELECT count(*) FROM audit_entries)::int AS audit,
              (SELECT count(*) FROM provenance_records)::int AS provenance`,
    );
    const overhead = rows
      .map((r) => new Date(r.finished).getTime() - new Date(r.created).getTime() - (held[r.id] ?? 0))
      .sort((x, y) => x - y);
    return {
      rate: N / seconds,
      seconds,
      overhead,
      appCpu: appCpu / N,
      pgCpu: pgCpu / N,
      workerCpu: workerCpu / N,
      load,
      loadAfter,
      note: `for all ${WARMUP + N} tasks: ${counts?.events} events, ${counts?.verdicts} verdicts, ${counts?.audit} audit entries, ${counts?.provenance} provenance records`,
    };
  } finally {
    await a.close();
  }
}

async function benchPgBoss(worker: Child, workerUrl: string): Promise<Outcome | { error: string }> {
  let PgBoss: typeof import("pg-boss").PgBoss;
  try {
    ({ PgBoss } = await import("pg-boss"));
  } catch (err) {
    return { error: `pg-boss 12 could not be loaded on Node ${process.version}: ${(err as Error).message}` };
  }
  const schema = `bench_pgboss_${randomBytes(4).toString("hex")}`;
  const boss = new PgBoss({ connectionString: withApp(URL_, `${schema}_app`), schema, max: 10 });
  boss.on("error", (err: Error) => console.error("pg-boss:", err.message));
  try {
    await boss.start();
  } catch (err) {
    return { error: `pg-boss 12 did not start on Node ${process.version}: ${(err as Error).message}` };
  }
  const queue = "bench";
  await boss.createQueue(queue);
  await boss.work<{ i: number; phase: string }>(
    queue,
    // At most CONCURRENCY requests in flight, as the agency's worker allows: PGBOSS_LOCAL fetch loops of
    // CONCURRENCY / PGBOSS_LOCAL jobs each.
    {
      batchSize: Math.max(1, Math.floor(CONCURRENCY / PGBOSS_LOCAL)),
      localConcurrency: PGBOSS_LOCAL,
      pollingIntervalSeconds: 0.5,
      burstWhenBatchFull: true,
    },
    async (jobs) => {
      await Promise.all(
        jobs.map(async (job) => {
          // The agency's request body, over the same HTTP client (undici), so the sides pay the same per call.
          const { body, headers } = executeRequest(job.id, `${job.data.phase} ${job.data.i}`, job.data.i);
          const res = await request(`${workerUrl}/execute`, { method: "POST", headers, body });
          const result = (await res.body.json()) as { status: string };
          if (result.status !== "completed") throw new Error("worker failed");
        }),
      );
    },
  );
  const db = await openDatabase({ url: URL_, schema });
  try {
    const completed = `SELECT count(*) FILTER (WHERE state = 'completed')::int AS done,
              count(*) FILTER (WHERE state = 'failed')::int AS bad FROM "${schema}".job WHERE name = $1`;
    const backends = new BackendCpu(db, `${schema}_app`);
    await boss.insert(
      queue,
      Array.from({ length: WARMUP }, (_, i) => ({ data: { i, phase: "warm-up" } })),
    );
    await waitFor(db, completed, [queue], WARMUP, backends, "jobs failed");
    await workerTimes(worker);
    await backends.sample();
    backends.restart();
    const cpu0 = process.cpuUsage();
    const load = load1();
    const t0 = performance.now();
    await boss.insert(
      queue,
      Array.from({ length: N }, (_, i) => ({ data: { i, phase: "bench" } })),
    );
    await waitFor(db, completed, [queue], WARMUP + N, backends, "jobs failed");
    const seconds = (performance.now() - t0) / 1000;
    const loadAfter = load1();
    await backends.sample();
    const pgCpu = backends.totalMs();
    const cpu = process.cpuUsage(cpu0);
    const { held, cpuMs: workerCpu } = await workerTimes(worker);
    const rows = await db.query<{ id: string; created: Date; completed: Date }>(
      `SELECT id, created_on AS created, completed_on AS completed FROM "${schema}".job
        WHERE name = $1 AND data->>'phase' = 'bench'`,
      [queue],
    );
    const overhead = rows
      .map((r) => new Date(r.completed).getTime() - new Date(r.created).getTime() - (held[r.id] ?? 0))
      .sort((a, b) => a - b);
    return {
      rate: N / seconds,
      seconds,
      overhead,
      appCpu: (cpu.user + cpu.system) / 1000 / N,
      pgCpu: pgCpu / N,
      workerCpu: workerCpu / N,
      load,
      loadAfter,
      note: "jobs only: no events, verdicts, audit or provenance",
    };
  } finally {
    await boss.stop({ graceful: false }).catch(() => undefined);
    await db.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
    await db.close();
  }
}

async function benchDbos(worker: Child, workerUrl: string, mode: "batch" | "single"): Promise<Outcome> {
  const schema = `bench_dbos_${randomBytes(4).toString("hex")}`;
  const child = new Child(
    "lib/dbos-child.ts",
    {
      BENCH_DATABASE_URL: withApp(URL_, `${schema}_app`),
      BENCH_SCHEMA: schema,
      BENCH_WORKER_URL: workerUrl,
      BENCH_CONCURRENCY: String(CONCURRENCY),
    },
    // DBOS 5.3 issues overlapping queries on one pg client, which pg 8 reports with a deprecation warning per process.
    ["--no-deprecation"],
  );
  const db = await openDatabase({ url: URL_, schema });
  try {
    await child.ask("ready");
    const finished = `SELECT count(*) FILTER (WHERE status = 'SUCCESS')::int AS done,
              count(*) FILTER (WHERE status IN ('ERROR', 'CANCELLED', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED'))::int AS bad
         FROM "${schema}".workflow_status WHERE queue_name = 'bench'`;
    const backends = new BackendCpu(db, `${schema}_app`);
    const submit = (count: number, prefix: string) =>
      child.ask("submitted", { type: "submit", mode, prefix, count, offset: 0 });
    await submit(WARMUP, "warm-up");
    await waitFor(db, finished, [], WARMUP, backends, "workflows did not succeed");
    await workerTimes(worker);
    await backends.sample();
    backends.restart();
    const [cpu0] = await childCpu([child]);
    const load = load1();
    const t0 = performance.now();
    await submit(N, "bench");
    await waitFor(db, finished, [], WARMUP + N, backends, "workflows did not succeed");
    const seconds = (performance.now() - t0) / 1000;
    const loadAfter = load1();
    await backends.sample();
    const pgCpu = backends.totalMs();
    const [cpu1] = await childCpu([child]);
    const { held, cpuMs: workerCpu } = await workerTimes(worker);
    const rows = await db.query<{ id: string; created: string; updated: string }>(
      `SELECT workflow_uuid AS id, created_at AS created, updated_at AS updated
         FROM "${schema}".workflow_status WHERE queue_name = 'bench'`,
    );
    const [counts] = await db.query<{ steps: number }>(
      `SELECT count(*)::int AS steps FROM "${schema}".operation_outputs`,
    );
    const overhead = rows
      .filter((r) => r.id in held)
      .map((r) => Number(r.updated) - Number(r.created) - (held[r.id] as number))
      .sort((a, b) => a - b);
    return {
      rate: N / seconds,
      seconds,
      overhead,
      appCpu: ((cpu1 as number) - (cpu0 as number)) / N,
      pgCpu: pgCpu / N,
      workerCpu: workerCpu / N,
      load,
      loadAfter,
      note: `for all ${WARMUP + N} workflows: ${counts?.steps} step checkpoints; no events, verdicts, audit or provenance`,
    };
  } finally {
    await child.ask("stopped", { type: "stop" }).catch(() => undefined);
    await child.close();
    await db.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
    await db.close();
  }
}

interface Latency {
  /** Submit → dispatched, ms: from the start of the create call to the request's arrival at the worker. */
  dispatched: number[];
  /** The same span as stored: the attempt's started_at − the task's created_at (ms precision). */
  stored: number[];
  /** The worker's own time per request. */
  worker: number[];
  /** Submit → accepted (the task's updated_at once accepted − the start of the create call). */
  accepted: number[];
  load: number;
  loadAfter: number;
}

/** One agency process at light load: LATENCY_N tasks created one at a time, one per LATENCY_INTERVAL_MS. */
async function benchLatency(worker: Child, workerUrl: string): Promise<Latency> {
  const a = await startAgency(workerUrl, 1, "latency");
  const { db, children, backends } = a;
  const child = children[0] as Child;
  try {
    await a.submit(WARMUP, "warm-up");
    await waitFor(db, ACCEPTED, [], WARMUP, backends);
    await workerTimes(worker);
    const load = load1();
    const submitted: { id: string; at: number }[] = [];
    for (let i = 0; i < LATENCY_N; i++) {
      const next = performance.now() + LATENCY_INTERVAL_MS;
      submitted.push(
        await child.ask<{ id: string; at: number }>("submittedOne", { type: "submitOne", title: `light ${i}` }),
      );
      await new Promise((r) => setTimeout(r, Math.max(0, next - performance.now())));
    }
    await waitFor(db, ACCEPTED, [], WARMUP + LATENCY_N, backends);
    const loadAfter = load1();
    const { held, received } = await workerTimes(worker);
    const stored = await db.query<{ id: string; created: Date; started: Date; updated: Date }>(
      `SELECT t.id, t.created_at AS created, a.started_at AS started, t.updated_at AS updated
         FROM tasks t JOIN attempts a ON a.task_id = t.id WHERE t.title LIKE 'light %'`,
    );
    const byId = new Map(stored.map((r) => [r.id, r]));
    const sorted = (xs: number[]) => xs.sort((x, y) => x - y);
    return {
      dispatched: sorted(submitted.map((s) => (received[s.id] as number) - s.at)),
      stored: sorted(stored.map((r) => new Date(r.started).getTime() - new Date(r.created).getTime())),
      worker: sorted(submitted.map((s) => held[s.id] as number)),
      accepted: sorted(submitted.map((s) => new Date((byId.get(s.id) as { updated: Date }).updated).getTime() - s.at)),
      load,
      loadAfter,
    };
  } finally {
    await a.close();
  }
}

const fmt = (x: number, d = 1) => x.toFixed(d);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

function line(name: string, o: Outcome): string {
  return (
    `${name.padEnd(22)} ${fmt(o.rate).padStart(7)} tasks/s  (${fmt(o.seconds, 2)} s, load ${fmt(o.load, 2)} → ${fmt(o.loadAfter, 2)})  ` +
    `overhead p50 ${fmt(percentile(o.overhead, 50))} ms p95 ${fmt(percentile(o.overhead, 95))} ms  ` +
    `CPU per task: app ${fmt(o.appCpu, 2)} ms + Postgres ${fmt(o.pgCpu, 2)} ms = ${fmt(o.appCpu + o.pgCpu, 2)} ms, worker ${fmt(o.workerCpu, 2)} ms  [${o.note}]`
  );
}

type Round = Partial<Record<Side, Outcome>>;

/**
 * The storage floor (the agency's rows alone, by bare SQL) and what it and the measured CPU per task
 * allow on this machine: the most any design keeping these rows could reach against pg-boss, and the
 * most two agency processes could reach with every core busy.
 */
async function printFloorAndBounds(rounds: Round[]) {
  const m = (pick: (r: Round) => number | undefined) => {
    const xs = rounds.map(pick).filter((x): x is number => x !== undefined);
    return xs.length ? median(xs) : Number.NaN;
  };
  const bossRate = m((r) => r["pg-boss"]?.rate);
  const bossCpu = m((r) => r["pg-boss"] && r["pg-boss"].appCpu + r["pg-boss"].pgCpu);
  const bossApp = m((r) => r["pg-boss"]?.appCpu);
  const bossWorker = m((r) => r["pg-boss"]?.workerCpu);
  const twoCpu = m((r) => r["agency-2p"] && r["agency-2p"].appCpu + r["agency-2p"].pgCpu + r["agency-2p"].workerCpu);
  const floor = await storageFloor(URL_, `bench_floor_${randomBytes(4).toString("hex")}`, {
    tasks: N,
    warmup: WARMUP,
    batch: 100,
  });
  const tables = Object.entries(floor.cpuMs)
    .map(([table, ms]) => `${table} ${fmt(ms, 3)}`)
    .join(", ");
  console.log(
    `storage floor          ${fmt(floor.tasks / floor.seconds).padStart(7)} tasks/s  (${fmt(floor.seconds, 2)} s, load ${fmt(load1(), 2)})  ` +
      `the agency's rows alone, bare SQL in batches of 100 on one connection: Postgres CPU per task ` +
      `${fmt(floor.totalCpuMs, 3)} ms (${tables})`,
  );
  if (Number.isNaN(bossCpu)) return;
  console.log(
    `ratio  storage floor's Postgres CPU per task / pg-boss's whole CPU per job (app + Postgres, ${fmt(bossCpu, 2)} ms) = ` +
      `${fmt(floor.totalCpuMs / bossCpu, 2)}`,
  );
  // A design that keeps these rows and pays no more than pg-boss per worker call still needs, per task,
  // the floor's Postgres CPU + pg-boss's own CPU per job (its HTTP call and little else) + the worker's CPU.
  const perTask = floor.totalCpuMs + bossApp + bossWorker;
  const bound = (os.cpus().length * 1000) / perTask;
  console.log(
    `bound  ${os.cpus().length} cores / (floor ${fmt(floor.totalCpuMs, 2)} + pg-boss's app CPU ${fmt(bossApp, 2)} + ` +
      `worker ${fmt(bossWorker, 2)} ms per task) = ${fmt(bound, 0)} tasks/s for any design with these rows, ` +
      `${fmt(bound / bossRate, 2)} × pg-boss`,
  );
  if (Number.isNaN(twoCpu)) return;
  // Two processes on this machine: at most every core busy at the CPU per task they were measured at.
  const twoBound = (os.cpus().length * 1000) / twoCpu;
  console.log(
    `bound  2 agency processes: ${os.cpus().length} cores / ${fmt(twoCpu, 2)} ms of CPU per task (app + Postgres + worker) = ` +
      `${fmt(twoBound, 0)} tasks/s with every core busy, ${fmt(twoBound / m((r) => r.agency?.rate), 2)} × one process's measured rate`,
  );
}

const SIDE_LABEL: Record<Side, string> = {
  agency: "agency, 1 process",
  "pg-boss": "pg-boss 12",
  "dbos-batch": "DBOS 5, batch enqueue",
  "dbos-single": "DBOS 5, one start each",
  "agency-2p": "agency, 2 processes",
};

async function runSide(side: Side, worker: Child, workerUrl: string, round: number): Promise<Outcome> {
  switch (side) {
    case "agency":
      return benchAgency(worker, workerUrl, 1, round);
    case "agency-2p":
      return benchAgency(worker, workerUrl, 2, round);
    case "dbos-batch":
      return benchDbos(worker, workerUrl, "batch");
    case "dbos-single":
      return benchDbos(worker, workerUrl, "single");
    case "pg-boss": {
      const b = await benchPgBoss(worker, workerUrl);
      if ("error" in b) throw new Error(`pg-boss not measured: ${b.error}`);
      return b;
    }
  }
}

async function main() {
  const cpus = os.cpus();
  console.log(
    `throughput: ${N} tasks × ${ROUNDS} round(s) after ${WARMUP} warm-up, worker concurrency ${CONCURRENCY}, ` +
      `Postgres ${URL_.replace(/\/\/[^@]*@/, "//")}, Node ${process.version}, ${cpus.length} × ${cpus[0]?.model.trim()}, ` +
      `load ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")}`,
  );
  const worker = new Child("lib/noop-worker.ts", {});
  const { url: workerUrl } = await worker.ask<{ url: string }>("ready");
  const rounds: Round[] = [];
  try {
    for (let round = 1; SIDES.length && round <= ROUNDS; round++) {
      // Odd rounds run the sides as listed, even rounds in reverse, so no side always runs first or last.
      const order = round % 2 === 1 ? SIDES : [...SIDES].reverse();
      const r: Round = {};
      for (const side of order) {
        const o = await runSide(side, worker, workerUrl, round);
        console.log(`round ${round}  ${line(SIDE_LABEL[side], o)}`);
        r[side] = o;
      }
      rounds.push(r);
    }
    const rate = (side: Side) => {
      const xs = rounds.map((r) => r[side]?.rate).filter((x): x is number => x !== undefined);
      return xs.length ? median(xs) : Number.NaN;
    };
    const cpu = (side: Side) => {
      const xs = rounds
        .map((r) => r[side] && r[side].appCpu + r[side].pgCpu)
        .filter((x): x is number => x !== undefined);
      return xs.length ? median(xs) : Number.NaN;
    };
    const loads = rounds.flatMap((r) => Object.values(r).flatMap((o) => [o.load, o.loadAfter]));
    if (SIDES.length)
      console.log(
        `medians of ${ROUNDS} round(s), load ${fmt(Math.min(...loads), 2)}–${fmt(Math.max(...loads), 2)} over the timed parts:`,
      );
    for (const side of SIDES) {
      console.log(
        `  ${SIDE_LABEL[side].padEnd(22)} ${fmt(rate(side)).padStart(7)} tasks/s  CPU per task (app + Postgres) ${fmt(cpu(side), 2)} ms` +
          (side === "agency" ? " (target ≤ 0.8 ms)" : ""),
      );
    }
    if (SIDES.includes("agency") && SIDES.includes("pg-boss"))
      console.log(`agency/pg-boss ratio: ${fmt(rate("agency") / rate("pg-boss"), 2)} (target ≥ 1.0)`);
    if (SIDES.includes("agency") && (SIDES.includes("dbos-batch") || SIDES.includes("dbos-single"))) {
      const batch = rate("dbos-batch");
      const single = rate("dbos-single");
      const best = Number.isNaN(batch) ? single : batch;
      console.log(
        `agency/dbos ratio: ${fmt(rate("agency") / best, 2)} (target ≥ 2.5; against DBOS ${Number.isNaN(batch) ? "one start per task" : "with batch enqueue"}` +
          (Number.isNaN(batch) || Number.isNaN(single)
            ? ")"
            : `; against one start per task: ${fmt(rate("agency") / single, 2)})`),
      );
    }
    if (SIDES.includes("agency") && SIDES.includes("agency-2p"))
      console.log(`agency 2 processes / 1 process ratio: ${fmt(rate("agency-2p") / rate("agency"), 2)} (target ≥ 1.6)`);
    if (LATENCY_N > 0) {
      const l = await benchLatency(worker, workerUrl);
      const p = (xs: number[]) =>
        `p50 ${fmt(percentile(xs, 50))} ms, p99 ${fmt(percentile(xs, 99))} ms, max ${fmt(xs[xs.length - 1] as number)} ms`;
      console.log(
        `latency at light load: agency, 1 process, ${LATENCY_N} tasks created one at a time, one per ${LATENCY_INTERVAL_MS} ms ` +
          `(load ${fmt(l.load, 2)} → ${fmt(l.loadAfter, 2)})`,
      );
      console.log(`  submit → dispatched (create call → request at the worker): ${p(l.dispatched)}`);
      console.log(`  worker's own time: ${p(l.worker)}  (target: dispatched p99 ≤ 20 ms + the worker's time)`);
      console.log(`  as stored (attempt started_at − task created_at): ${p(l.stored)}`);
      console.log(`  submit → accepted (create call → task updated_at): ${p(l.accepted)}`);
    }
    if (FLOOR && SIDES.length) await printFloorAndBounds(rounds);
    console.log(
      `load after: ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")}`,
    );
  } finally {
    await worker.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

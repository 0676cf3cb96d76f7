/**
 * End-to-end throughput of the agency against pg-boss 12 on the same Postgres server, through the
 * same no-op HTTP worker, in the same run; then two agency processes against one.
 *
 *   npm run bench:throughput     (BENCH_N=2000, BENCH_ROUNDS=1, BENCH_CONCURRENCY=200,
 *                                 BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test,
 *                                 BENCH_PROFILE=1 writes a CPU profile of each agency process to bench/profiles/)
 *
 * Agency: N tasks created, dispatched, executed over HTTP, judged and accepted, with their events,
 * attempts, verdicts, audit entries and provenance records (one signed checkpoint per batch) committed; the clock stops when
 * the last task is `accepted`. Each agency process is a child process running the real services.
 * pg-boss: the same N jobs inserted in one call, fetched (batch 200, local concurrency 8), each sent
 * to the worker, completed; the clock stops when the last job is `completed`.
 * The worker runs in a process of its own. CPU time is reported per task for the agency (or pg-boss)
 * process and for its Postgres backends (told apart by application_name), which is what bounds the
 * rates on a 2-core machine.
 * Overhead per task = (finished − created) − the worker's own time for that request.
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
import { storageFloor } from "./lib/storage-floor.js";

const N = positiveInt("BENCH_N", 2000);
const ROUNDS = positiveInt("BENCH_ROUNDS", 1);
const CONCURRENCY = positiveInt("BENCH_CONCURRENCY", 200);
const PGBOSS_LOCAL = positiveInt("BENCH_PGBOSS_LOCAL", 2);
/** Tasks (jobs) run before the clock starts, so both sides are measured with warm JIT and pools. */
const WARMUP = positiveInt("BENCH_WARMUP", 500);
const URL_ = process.env.BENCH_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/test";
const PROFILE = process.env.BENCH_PROFILE === "1";
const here = path.dirname(new URL(import.meta.url).pathname);

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
    if (msg) this.proc.send(msg);
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
  /** CPU ms per task: the agency processes (or the pg-boss process), and the Postgres server. */
  appCpu: number;
  pgCpu: number;
  /** The no-op worker process's CPU ms per task. */
  workerCpu: number;
  note: string;
}

async function waitFor(
  db: Awaited<ReturnType<typeof openDatabase>>,
  sql: string,
  params: unknown[],
  n: number,
  cpu: BackendCpu,
) {
  for (;;) {
    await cpu.sample();
    const [row] = await db.query<{ done: number; bad: number }>(sql, params);
    if ((row?.bad ?? 0) > 0) throw new Error(`${row?.bad} tasks did not end accepted`);
    if ((row?.done ?? 0) >= n) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** How long the worker held each request since the last call, and the CPU ms its process used meanwhile. */
async function workerTimes(worker: Child): Promise<{ held: Record<string, number>; cpuMs: number }> {
  const { ms, cpuMs } = await worker.ask<{ ms: Record<string, number>; cpuMs: number }>("times", { type: "times" });
  return { held: ms, cpuMs };
}

async function benchAgency(worker: Child, workerUrl: string, processes: number, round: number): Promise<Outcome> {
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
  try {
    for (let i = 0; i < processes; i++) {
      const execArgv = PROFILE
        ? [
            "--cpu-prof",
            `--cpu-prof-dir=${profileDir}`,
            `--cpu-prof-name=agency-${processes}p-r${round}-${i}.cpuprofile`,
          ]
        : [];
      const child = new Child("lib/agency-child.ts", env, execArgv);
      children.push(child);
      // One at a time: the first applies the migrations.
      await child.ask("ready");
    }
    const accepted = `SELECT count(*) FILTER (WHERE state = 'accepted')::int AS done,
              count(*) FILTER (WHERE state IN ('failed', 'rejected', 'changes_requested'))::int AS bad FROM tasks`;
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
    const backends = new BackendCpu(db, `${schema}_app`);
    await submit(WARMUP, "warm-up");
    await waitFor(db, accepted, [], WARMUP, backends);
    await workerTimes(worker);
    await backends.sample();
    backends.restart();
    const cpu0 = await Promise.all(
      children.map((c) => c.ask<{ userMs: number; systemMs: number }>("cpu", { type: "cpu" })),
    );
    const t0 = performance.now();
    await submit(N, "bench");
    await waitFor(db, accepted, [], WARMUP + N, backends);
    const seconds = (performance.now() - t0) / 1000;
    await backends.sample();
    const pgCpu = backends.totalMs();
    const cpu1 = await Promise.all(
      children.map((c) => c.ask<{ userMs: number; systemMs: number }>("cpu", { type: "cpu" })),
    );
    const appCpu = cpu1.reduce((s, c, i) => s + c.userMs + c.systemMs - (cpu0[i]!.userMs + cpu0[i]!.systemMs), 0);
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
      .sort((a, b) => a - b);
    return {
      rate: N / seconds,
      seconds,
      overhead,
      appCpu: appCpu / N,
      pgCpu: pgCpu / N,
      workerCpu: workerCpu / N,
      note: `for all ${WARMUP + N} tasks: ${counts?.events} events, ${counts?.verdicts} verdicts, ${counts?.audit} audit entries, ${counts?.provenance} provenance records`,
    };
  } finally {
    await Promise.all(children.map((c) => c.ask("stopped", { type: "stop" }).catch(() => undefined)));
    await Promise.all(children.map((c) => c.close()));
    await db.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await db.close();
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
  await boss.work<{ i: number }>(
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
          // The same HTTP client as the agency's (undici), so the two sides pay the same per call.
          const res = await request(`${workerUrl}/execute`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ jobId: job.id, i: job.data.i }),
          });
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
    await waitFor(db, completed, [queue], WARMUP, backends);
    await workerTimes(worker);
    await backends.sample();
    backends.restart();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await boss.insert(
      queue,
      Array.from({ length: N }, (_, i) => ({ data: { i, phase: "bench" } })),
    );
    await waitFor(db, completed, [queue], WARMUP + N, backends);
    const seconds = (performance.now() - t0) / 1000;
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
      note: "jobs only: no events, verdicts, audit or provenance",
    };
  } finally {
    await boss.stop({ graceful: false }).catch(() => undefined);
    await db.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
    await db.close();
  }
}

const fmt = (x: number, d = 1) => x.toFixed(d);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

function line(name: string, o: Outcome): string {
  return (
    `${name.padEnd(20)} ${fmt(o.rate).padStart(7)} tasks/s  (${fmt(o.seconds, 2)} s)  ` +
    `overhead p50 ${fmt(percentile(o.overhead, 50))} ms p95 ${fmt(percentile(o.overhead, 95))} ms  ` +
    `CPU per task: app ${fmt(o.appCpu, 2)} ms, Postgres ${fmt(o.pgCpu, 2)} ms, worker ${fmt(o.workerCpu, 2)} ms  [${o.note}]`
  );
}

/**
 * The storage floor (the agency's rows alone, by bare SQL) and what it and the measured CPU per task
 * allow on this machine: the most any design keeping these rows could reach against pg-boss, and the
 * most two agency processes could reach with every core busy.
 */
async function printFloorAndBounds(rounds: { one: Outcome; boss: Outcome; two: Outcome }[]) {
  const m = (pick: (r: (typeof rounds)[number]) => number) => median(rounds.map(pick));
  const bossRate = m((r) => r.boss.rate);
  const bossCpu = m((r) => r.boss.appCpu + r.boss.pgCpu);
  const bossApp = m((r) => r.boss.appCpu);
  const bossWorker = m((r) => r.boss.workerCpu);
  const twoCpu = m((r) => r.two.appCpu + r.two.pgCpu + r.two.workerCpu);
  const floor = await storageFloor(URL_, `bench_floor_${randomBytes(4).toString("hex")}`, {
    tasks: N,
    warmup: WARMUP,
    batch: 100,
  });
  const tables = Object.entries(floor.cpuMs)
    .map(([table, ms]) => `${table} ${fmt(ms, 3)}`)
    .join(", ");
  console.log(
    `storage floor        ${fmt(floor.tasks / floor.seconds).padStart(7)} tasks/s  (${fmt(floor.seconds, 2)} s)  ` +
      `the agency's rows alone, bare SQL in batches of 100 on one connection: Postgres CPU per task ` +
      `${fmt(floor.totalCpuMs, 3)} ms (${tables})`,
  );
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
  // Two processes on this machine: at most every core busy at the CPU per task they were measured at.
  const twoBound = (os.cpus().length * 1000) / twoCpu;
  console.log(
    `bound  2 agency processes: ${os.cpus().length} cores / ${fmt(twoCpu, 2)} ms of CPU per task (app + Postgres + worker) = ` +
      `${fmt(twoBound, 0)} tasks/s with every core busy, ${fmt(twoBound / m((r) => r.one.rate), 2)} × one process's measured rate`,
  );
}

async function main() {
  const cpus = os.cpus();
  console.log(
    `throughput: ${N} tasks × ${ROUNDS} round(s), worker concurrency ${CONCURRENCY}, Postgres ${URL_.replace(/\/\/[^@]*@/, "//")}, ` +
      `Node ${process.version}, ${cpus.length} × ${cpus[0]?.model.trim()}, load ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")}`,
  );
  const worker = new Child("lib/noop-worker.ts", {});
  const { url: workerUrl } = await worker.ask<{ url: string }>("ready");
  const rounds: { one: Outcome; boss: Outcome; two: Outcome }[] = [];
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      const a1 = await benchAgency(worker, workerUrl, 1, round);
      console.log(line("agency, 1 process", a1));
      const b = await benchPgBoss(worker, workerUrl);
      if ("error" in b) {
        console.log(`pg-boss not measured: ${b.error}`);
        process.exitCode = 1;
        return;
      }
      console.log(line("pg-boss 12", b));
      const a2 = await benchAgency(worker, workerUrl, 2, round);
      console.log(line("agency, 2 processes", a2));
      rounds.push({ one: a1, boss: b, two: a2 });
    }
    await printFloorAndBounds(rounds);
    const rate = (side: "one" | "boss" | "two") => median(rounds.map((r) => r[side].rate));
    const r1 = rate("one") / rate("boss");
    const r2 = rate("two") / rate("one");
    console.log(
      `ratio  agency 1 process / pg-boss = ${fmt(r1, 2)} (targets: ≥ 1.0 execution issue, ≥ 2.0 scale issue)`,
    );
    console.log(`ratio  agency 2 processes / 1 process = ${fmt(r2, 2)} (target ≥ 1.6)`);
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

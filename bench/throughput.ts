/**
 * End-to-end throughput of the dispatcher against pg-boss 12 on the same Postgres server, through the
 * same no-op HTTP worker, in the same run.
 *
 *   npm run bench:throughput            (BENCH_N=2000, BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test)
 *
 * Agency: N tasks created in one call, dispatched, executed over HTTP, judged, accepted, with their
 * events, attempts and verdicts persisted; the clock stops when the last task is `accepted`.
 * pg-boss: the same N jobs inserted in one call, fetched (batch 200, local concurrency 8), each sent
 * to the worker, completed; the clock stops when the last job is `completed`.
 * Overhead per task = (finished − created) − the worker's own time for that request.
 */
import { randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import pino from "pino";
import { loadConfig } from "../src/server/config.js";
import { openDatabase } from "../src/server/db/database.js";
import { migrate } from "../src/server/db/migrate.js";
import { createServices } from "../src/server/services.js";
import type { Actor } from "../src/shared/roles.js";
import { taskSpecSchema } from "../src/shared/task-spec.js";

const N = Number(process.env.BENCH_N ?? 2000);
const URL_ = process.env.BENCH_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/test";
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 200);
const log = pino({ level: "silent" });

/** The no-op worker: answers every execute at once and records how long it held each request. */
async function startNoopWorker() {
  const workerMs = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const t0 = performance.now();
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.url === "/health") {
        res.writeHead(200, { "content-type": "application/json" });
        return res.end(JSON.stringify({ status: "ok", protocol: 1, capabilities: ["noop"], inFlight: 0 }));
      }
      const body = JSON.parse(Buffer.concat(chunks).toString()) as { taskId?: string; jobId?: string };
      const out = JSON.stringify({ status: "completed", summary: "nothing to do", artifacts: [] });
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(out) });
      res.end(out);
      workerMs.set(body.taskId ?? body.jobId ?? "", performance.now() - t0);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    workerMs,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

async function benchAgency(worker: Awaited<ReturnType<typeof startNoopWorker>>) {
  const schema = `bench_agency_${randomBytes(4).toString("hex")}`;
  const db = await openDatabase({ url: URL_, schema });
  await migrate(db);
  const config = loadConfig({
    KEYSTORE: "env",
    AGENCY_MASTER_KEY: randomBytes(32).toString("base64"),
    AGENCY_ADMIN_PASSWORD: "bench-password-not-used",
    WORKERS: `noop=${worker.url}|noop|${CONCURRENCY}`,
    DISPATCH_INTERVAL_MS: "50",
    WORKER_HEALTH_INTERVAL_MS: "60000",
  });
  const services = await createServices(db, log, config);
  await services.start();
  const actor: Actor = { kind: "user", id: "bench", name: "bench", role: "operator" };
  const specs = Array.from({ length: N }, (_, i) =>
    taskSpecSchema.parse({ title: `bench ${i}`, mode: "chore", capability: "noop", input: { i } }),
  );
  try {
    const t0 = performance.now();
    for (let i = 0; i < N; i += 1000) await services.tasks.createMany(actor, specs.slice(i, i + 1000));
    // Polled with one plain query, as the pg-boss side below is, so the harness costs both sides the same.
    for (;;) {
      const [row] = await db.query<{ done: number; failed: number }>(
        `SELECT count(*) FILTER (WHERE state = 'accepted')::int AS done,
                count(*) FILTER (WHERE state IN ('failed', 'rejected', 'changes_requested'))::int AS failed
           FROM tasks`,
      );
      if ((row?.done ?? 0) >= N) break;
      if (row?.failed) throw new Error(`${row.failed} tasks did not end accepted`);
      await new Promise((r) => setTimeout(r, 10));
    }
    const seconds = (performance.now() - t0) / 1000;
    const rows = await db.query<{ id: string; created: Date; finished: Date }>(
      `SELECT t.id, t.created_at AS created, a.finished_at AS finished FROM tasks t JOIN attempts a ON a.task_id = t.id`,
    );
    const events = await db.prisma.taskEvent.count();
    const verdicts = await db.prisma.attempt.count({ where: { verdict: "accept" } });
    const overhead = rows
      .map((r) => new Date(r.finished).getTime() - new Date(r.created).getTime() - (worker.workerMs.get(r.id) ?? 0))
      .sort((a, b) => a - b);
    return { seconds, rate: N / seconds, overhead, events, verdicts };
  } finally {
    await services.stop();
    await db.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await db.close();
  }
}

async function benchPgBoss(worker: Awaited<ReturnType<typeof startNoopWorker>>) {
  let PgBoss: typeof import("pg-boss").PgBoss;
  try {
    ({ PgBoss } = await import("pg-boss"));
  } catch (err) {
    return { error: `pg-boss 12 could not be loaded on Node ${process.version}: ${(err as Error).message}` };
  }
  const schema = `bench_pgboss_${randomBytes(4).toString("hex")}`;
  const boss = new PgBoss({ connectionString: URL_, schema, max: 10 });
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
    { batchSize: 200, localConcurrency: 8, pollingIntervalSeconds: 0.5, burstWhenBatchFull: true },
    async (jobs) => {
      await Promise.all(
        jobs.map(async (job) => {
          const res = await fetch(`${worker.url}/execute`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ jobId: job.id, i: job.data.i }),
          });
          const result = (await res.json()) as { status: string };
          if (result.status !== "completed") throw new Error("worker failed");
        }),
      );
    },
  );
  const db = await openDatabase({ url: URL_, schema });
  try {
    const t0 = performance.now();
    await boss.insert(
      queue,
      Array.from({ length: N }, (_, i) => ({ data: { i } })),
    );
    for (;;) {
      const [row] = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM "${schema}".job WHERE name = $1 AND state = 'completed'`,
        [queue],
      );
      if ((row?.n ?? 0) >= N) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const seconds = (performance.now() - t0) / 1000;
    const rows = await db.query<{ id: string; created: Date; completed: Date }>(
      `SELECT id, created_on AS created, completed_on AS completed FROM "${schema}".job WHERE name = $1`,
      [queue],
    );
    const overhead = rows
      .map((r) => new Date(r.completed).getTime() - new Date(r.created).getTime() - (worker.workerMs.get(r.id) ?? 0))
      .sort((a, b) => a - b);
    return { seconds, rate: N / seconds, overhead };
  } finally {
    await boss.stop({ graceful: false }).catch(() => undefined);
    await db.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
    await db.close();
  }
}

async function main() {
  console.log(`throughput: ${N} tasks, Postgres ${URL_.replace(/\/\/[^@]*@/, "//")}, Node ${process.version}`);
  const worker = await startNoopWorker();
  try {
    const agency = await benchAgency(worker);
    worker.workerMs.clear();
    const boss = await benchPgBoss(worker);
    const fmt = (x: number) => x.toFixed(1);
    console.log(
      `agency   ${fmt(agency.rate)} tasks/s  (${agency.seconds.toFixed(2)} s; ${agency.events} events, ${agency.verdicts} verdicts persisted)`,
    );
    console.log(
      `         dispatch overhead per task excluding the worker: p50 ${fmt(percentile(agency.overhead, 50))} ms, p95 ${fmt(percentile(agency.overhead, 95))} ms`,
    );
    if ("error" in boss) {
      console.log(`pg-boss  not measured: ${boss.error}`);
      process.exitCode = 1;
      return;
    }
    console.log(`pg-boss  ${fmt(boss.rate)} jobs/s   (${boss.seconds.toFixed(2)} s)`);
    console.log(
      `         overhead per job excluding the worker: p50 ${fmt(percentile(boss.overhead, 50))} ms, p95 ${fmt(percentile(boss.overhead, 95))} ms`,
    );
    const ratio = agency.rate / boss.rate;
    console.log(`ratio    agency / pg-boss = ${ratio.toFixed(2)} (target ≥ 1.0)`);
  } finally {
    await worker.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

/**
 * One agency process for bench/throughput.ts: the real services (dispatcher, finisher, trail, hub,
 * metrics) on the Postgres server, driven over IPC by the bench.
 *
 *   env: BENCH_DATABASE_URL, BENCH_SCHEMA, BENCH_WORKER_URL, BENCH_CONCURRENCY, AGENCY_MASTER_KEY
 *   messages in:  { type: "submit", prefix, count, offset }  { type: "submitOne", title }  { type: "cpu" }  { type: "stop" }
 *   messages out: { type: "ready" }  { type: "submitted" }  { type: "submittedOne", id, at }
 *                 { type: "cpu", userMs, systemMs }  { type: "stopped" }
 *   (submitOne: one task created as the API creates one; `at` is when the call began, on bench/lib/clock.ts's clock)
 */
import pino from "pino";
import { loadConfig } from "../../src/server/config.js";
import { openDatabase } from "../../src/server/db/database.js";
import { migrate } from "../../src/server/db/migrate.js";
import { createServices } from "../../src/server/services.js";
import type { Actor } from "../../src/shared/roles.js";
import { taskSpecSchema } from "../../src/shared/task-spec.js";
import { clock } from "./clock.js";

type Command =
  | { type: "submit"; prefix: string; count: number; offset: number }
  | { type: "submitOne"; title: string }
  | { type: "cpu" }
  | { type: "stop" };

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

async function main() {
  const db = await openDatabase({ url: env("BENCH_DATABASE_URL"), schema: env("BENCH_SCHEMA") });
  await migrate(db);
  const config = loadConfig({
    KEYSTORE: "env",
    AGENCY_MASTER_KEY: env("AGENCY_MASTER_KEY"),
    AGENCY_ADMIN_PASSWORD: "bench-password-not-used",
    WORKERS: `noop=${env("BENCH_WORKER_URL")}|noop|${env("BENCH_CONCURRENCY")}`,
    START_REFERENCE_WORKER: "0",
    DISPATCH_INTERVAL_MS: "50",
    WORKER_HEALTH_INTERVAL_MS: "60000",
  });
  const services = await createServices(db, pino({ level: "silent" }), config);
  await services.start();
  const actor: Actor = { kind: "user", id: "bench", name: "bench", role: "operator" };
  const send = (m: object) => process.send?.(m);

  process.on("message", (m: Command) => {
    void (async () => {
      if (m.type === "submit") {
        const specs = Array.from({ length: m.count }, (_, i) =>
          taskSpecSchema.parse({
            title: `${m.prefix} ${m.offset + i}`,
            mode: "chore",
            capability: "noop",
            input: { i },
          }),
        );
        // createMany is called with at most 1,000 tasks at a time, as the API takes them.
        for (let i = 0; i < specs.length; i += 1000) await services.tasks.createMany(actor, specs.slice(i, i + 1000));
        send({ type: "submitted" });
      } else if (m.type === "submitOne") {
        const spec = taskSpecSchema.parse({ title: m.title, mode: "chore", capability: "noop", input: {} });
        const at = clock();
        const task = await services.tasks.create(actor, spec);
        send({ type: "submittedOne", id: task.id, at });
      } else if (m.type === "cpu") {
        const u = process.cpuUsage();
        send({ type: "cpu", userMs: u.user / 1000, systemMs: u.system / 1000 });
      } else if (m.type === "stop") {
        await services.stop();
        await db.close();
        send({ type: "stopped" });
        process.disconnect();
      }
    })().catch((err: unknown) => {
      console.error(err);
      process.exit(1);
    });
  });
  send({ type: "ready" });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

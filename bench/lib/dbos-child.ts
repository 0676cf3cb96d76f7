/**
 * DBOS Transact (@dbos-inc/dbos-sdk 5) for bench/throughput.ts, in a process of its own as the agency
 * runs (DBOS is one static instance per process): one workflow per task, whose one step POSTs the
 * agency's request body (bench/lib/request-body.ts) to the no-op worker; workflows are started
 * through a DBOS queue with the agency's concurrency (`workerConcurrency`) and a 50 ms polling
 * interval (DBOS's default is 1 s). DBOS checkpoints the workflow's input, the step's output and the
 * workflow's end in its system database (its own schema here).
 *
 *   env: BENCH_DATABASE_URL (with the application_name the bench counts backends by), BENCH_SCHEMA,
 *        BENCH_WORKER_URL, BENCH_CONCURRENCY
 *   messages in:  { type: "submit", mode: "batch" | "single", prefix, count, offset }  { type: "cpu" }  { type: "stop" }
 *   messages out: { type: "ready" }  { type: "submitted" }  { type: "cpu", userMs, systemMs }  { type: "stopped" }
 *
 * "batch": every workflow row of a submission written in one transaction per 1,000 (DBOS's
 * `prepareEnqueuedWorkflow` + `enqueueWorkflows`, its durable batch enqueue); "single": one
 * `DBOS.startWorkflow` per task (one transaction each), all issued at once as concurrent API calls would.
 */
import { randomUUID } from "node:crypto";
import { DBOS } from "@dbos-inc/dbos-sdk";
import { enqueueWorkflows, prepareEnqueuedWorkflow } from "@dbos-inc/dbos-sdk/eventreceiver";
import { request } from "undici";
import { executeRequest } from "./request-body.js";

type Command =
  | { type: "submit"; mode: "batch" | "single"; prefix: string; count: number; offset: number }
  | { type: "cpu" }
  | { type: "stop" };

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

const QUEUE = "bench";
const workerUrl = env("BENCH_WORKER_URL");

/** The step: the agency's request to the worker, over the same HTTP client (undici) as the agency's. */
async function execute(taskId: string, title: string, i: number): Promise<string> {
  const { body, headers } = executeRequest(taskId, title, i);
  const res = await request(`${workerUrl}/execute`, { method: "POST", headers, body });
  const result = (await res.body.json()) as { status: string; summary: string };
  if (res.statusCode !== 200 || result.status !== "completed") throw new Error(`worker answered ${res.statusCode}`);
  return result.summary;
}

async function task(title: string, i: number): Promise<string> {
  const taskId = DBOS.workflowID as string;
  return DBOS.runStep(() => execute(taskId, title, i), { name: "execute" });
}
const taskWorkflow = DBOS.registerWorkflow(task, { name: "task" });

async function main() {
  DBOS.setConfig({
    name: "bench",
    applicationVersion: "bench",
    systemDatabaseUrl: env("BENCH_DATABASE_URL"),
    systemDatabaseSchemaName: env("BENCH_SCHEMA"),
    logLevel: "error",
  });
  await DBOS.launch();
  await DBOS.registerQueue(QUEUE, {
    workerConcurrency: Number(env("BENCH_CONCURRENCY")),
    minPollingIntervalMs: 50,
  });
  const send = (m: object) => process.send?.(m);

  process.on("message", (m: Command) => {
    void (async () => {
      if (m.type === "submit") {
        const items = Array.from({ length: m.count }, (_, k) => ({
          id: randomUUID(),
          title: `${m.prefix} ${m.offset + k}`,
          i: m.offset + k,
        }));
        if (m.mode === "batch") {
          for (let k = 0; k < items.length; k += 1000) {
            const rows = await Promise.all(
              items
                .slice(k, k + 1000)
                .map((t) =>
                  prepareEnqueuedWorkflow(taskWorkflow, [t.title, t.i], { queueName: QUEUE, workflowID: t.id }),
                ),
            );
            await enqueueWorkflows(rows);
          }
        } else {
          await Promise.all(
            items.map((t) => DBOS.startWorkflow(taskWorkflow, { queueName: QUEUE, workflowID: t.id })(t.title, t.i)),
          );
        }
        send({ type: "submitted" });
      } else if (m.type === "cpu") {
        const u = process.cpuUsage();
        send({ type: "cpu", userMs: u.user / 1000, systemMs: u.system / 1000 });
      } else if (m.type === "stop") {
        await DBOS.shutdown();
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

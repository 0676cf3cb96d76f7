/**
 * 10,000 concurrent WebSocket clients on task events against one server process: the server's memory
 * per connection, and the delivery latency of task events from commit to every client, against a
 * 1-client reference and the server before connecting, measured in the same run.
 *
 *   npm run bench:connections   (BENCH_CLIENTS=10000, BENCH_TASKS=6, BENCH_GAP_MS=3000,
 *                                BENCH_CLIENT_PROCESSES=4, BENCH_IDLE_MS=16000;
 *                                BENCH_DATABASE_URL or TEST_DATABASE_URL for a Postgres server;
 *                                BENCH_CPU_PROF=<dir> for a CPU profile of the server process,
 *                                BENCH_SERVER_FLAGS for Node flags of the server process)
 *
 * The server (createServices + createApp, as `npm start` runs them) is a child process of its own;
 * the clients are real tRPC WebSocket clients (createWSClient, token in connectionParams, superjson)
 * subscribed to `tasks.onEvent` for every task, spread over BENCH_CLIENT_PROCESSES client processes
 * (bench/lib/ws-clients.ts). Events come from real task submissions and cancellations over HTTP
 * (`tasks.create`: one `created` event; `tasks.cancel` of the queued task: `canceling` and `canceled`
 * in one commit), one request at a time, BENCH_GAP_MS apart: far enough apart here that one commit's
 * fan-out to 10,000 clients is over before the next (the latency of an event, not of a backlog;
 * BENCH_GAP_MS=250 shows the backlog). An event's latency to a client is the
 * time from its request's reply (the commit happened before it) to the client's onData, on one clock
 * across processes (bench/lib/clock.ts); deliveries that beat the reply count as 0 ms.
 * Memory: the server's RSS and JS heap + external after a full GC, before and after connecting.
 */

import { fileURLToPath } from "node:url";
import {
  benchEntry,
  benchHttpClient,
  clockLine,
  databaseLabel,
  floorLine,
  retryReset,
  runBenchServer,
  sendSpans,
  startBenchServer,
} from "./lib/bench-server.js";
import { clock, fmt, loadAvg, machineLine, mb, percentile, sleep } from "./lib/clock.js";
import { checkConnectionLimits, latencies, type Sent, WsClientPool } from "./lib/ws-clients.js";

const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 10_000);
const TASKS = Number(process.env.BENCH_TASKS ?? 6);
const GAP_MS = Number(process.env.BENCH_GAP_MS ?? 3000);
const PROCESSES = Number(process.env.BENCH_CLIENT_PROCESSES ?? 4);
const IDLE_MS = Number(process.env.BENCH_IDLE_MS ?? 16_000);
const TARGET_P99_MS = 100;
const TARGET_RSS_BYTES = 2 ** 30;
/** Events per task: `created`, then `canceling` + `canceled` (one commit). */
const EVENTS_PER_TASK = 3;
const TRACE_RE =
  /"taskId":"([0-9a-f-]{36})","type":"([a-z_]+)","fromState":(?:null|"[a-z_]+"),"toState":(?:null|"([a-z_]+)")/;

function serve() {
  return runBenchServer({
    name: "connections",
    traceKey: (frame) => {
      const m = TRACE_RE.exec(frame);
      return m ? `${m[1]} ${m[2]} ${m[3] ?? ""}` : null;
    },
  });
}

async function main() {
  const started = performance.now();
  const limits = checkConnectionLimits(CLIENTS, PROCESSES);
  const server = await startBenchServer(fileURLToPath(import.meta.url));
  const { port, token } = server;
  const pool = await WsClientPool.start({ url: `ws://127.0.0.1:${port}/trpc`, token, processes: PROCESSES });
  const http = benchHttpClient(server);

  console.log(
    `connections bench: ${CLIENTS} clients on tasks.onEvent in ${PROCESSES} client processes, one server process; ` +
      `${TASKS} tasks created then canceled (${TASKS * EVENTS_PER_TASK} events, ${2 * TASKS} commits ${GAP_MS} ms apart); ` +
      `database ${databaseLabel()}` +
      (process.env.BENCH_SERVER_FLAGS ? `; server Node flags ${process.env.BENCH_SERVER_FLAGS}` : ""),
  );
  console.log(machineLine(limits));
  console.log(await clockLine(pool, server));

  /** Creates and cancels `tasks` tasks, one request at a time; collects every client's receive times. */
  async function round(label: string, tasks: number, clients: number) {
    const clientCpuStart = (await pool.collect()).cpuUs;
    const cpuStart = (await server.trace()).cpuUs;
    const sent = new Map<string, Sent>();
    const t0 = clock();
    for (let i = 0; i < tasks; i++) {
      let issued = clock();
      const task = await retryReset(() =>
        http.tasks.create.mutate({ title: `${label} ${i}`, input: { script: "true" } }),
      );
      sent.set(`${task.id} created queued`, { issued, returned: clock() });
      await sleep(GAP_MS);
      issued = clock();
      await retryReset(() => http.tasks.cancel.mutate({ id: task.id, reason: `${label}: connections bench` }));
      const returned = clock();
      sent.set(`${task.id} state_changed canceling`, { issued, returned });
      sent.set(`${task.id} state_changed canceled`, { issued, returned });
      await sleep(GAP_MS);
    }
    const producedMs = clock() - t0;
    const expected = sent.size * clients;
    const { arrivals, problems, clientCpuUs } = await pool.gather(sent, expected);
    const { spans, cpuUs } = await server.trace();
    return {
      ...latencies(arrivals, sent),
      expected,
      producedMs,
      problems,
      cpuMs: (cpuUs - cpuStart) / 1000,
      clientCpuMs: (clientCpuUs - clientCpuStart) / 1000,
      spans: sendSpans(spans, sent),
      rtt: Float64Array.from([...sent.values()].map((s) => s.returned - s.issued)).sort(),
    };
  }

  const print = (label: string, r: Awaited<ReturnType<typeof round>>) => {
    console.log(
      `${label}: ${r.delivered}/${r.expected} deliveries; after the request returned p50 ${fmt(percentile(r.fromReturn, 50))} ms, ` +
        `p99 ${fmt(percentile(r.fromReturn, 99))} ms, max ${fmt(r.fromReturn.at(-1) ?? Number.NaN)} ms ` +
        `(${r.early} arrived before the reply); from issuing it p50 ${fmt(percentile(r.fromIssue, 50))} ms, ` +
        `p99 ${fmt(percentile(r.fromIssue, 99))} ms; request round trip p50 ${fmt(percentile(r.rtt, 50))} ms, ` +
        `max ${fmt(r.rtt.at(-1) ?? Number.NaN)} ms`,
    );
    console.log(
      `  server side: last subscriber's frame handed to its socket p50 ${fmt(percentile(r.spans.toLast, 50))} ms, ` +
        `p99 ${fmt(percentile(r.spans.toLast, 99))} ms after the request returned; first-to-last frame p50 ` +
        `${fmt(percentile(r.spans.spread, 50))} ms, max ${fmt(r.spans.spread.at(-1) ?? Number.NaN)} ms; ` +
        `server CPU ${fmt(r.cpuMs, 0)} ms over the ${fmt(r.producedMs / 1000)} s of requests and delivery, ` +
        `client processes' CPU ${fmt(r.clientCpuMs, 0)} ms` +
        (r.problems.errors.length || r.problems.unexpectedCloses
          ? `; ${r.problems.unexpectedCloses} connections closed, errors: ${r.problems.errors.slice(0, 3).join(" | ")}`
          : ""),
    );
  };

  /** Server CPU over an idle period (no requests): keep-alive pings, credential re-checks, metrics. */
  async function idleCpu() {
    const a = (await server.trace()).cpuUs;
    const t = performance.now();
    await sleep(IDLE_MS);
    const b = (await server.trace()).cpuUs;
    return (b - a) / 1000 / (performance.now() - t);
  }

  await pool.open([{ spec: { topic: "tasks" }, count: 1 }]);
  await round("warm-up", 3, 1);
  const reference = await round("reference", TASKS, 1);
  print("reference, 1 client", reference);
  await pool.closeClients();
  await sleep(200);

  const before = await server.memory();
  const idleBefore = IDLE_MS > 0 ? await idleCpu() : Number.NaN;
  const { ms: connectMs } = await pool.open([{ spec: { topic: "tasks" }, count: CLIENTS }]);
  const after = await server.memory();
  const clientRss = await pool.memory();
  console.log(
    `connected ${CLIENTS} clients in ${fmt(connectMs / 1000)} s (server sees ${after.connections} WebSocket connections); ` +
      `client processes' RSS ${clientRss.map((r) => mb(r)).join(", ")} MB; load ${loadAvg()}`,
  );
  const idleStart = process.hrtime.bigint() / 1000n;
  const idleAfter = IDLE_MS > 0 ? await idleCpu() : Number.NaN;
  if (process.env.BENCH_CPU_PROF) {
    console.log(`cpu profile window of the idle period: ${idleStart}-${process.hrtime.bigint() / 1000n} µs`);
  }
  if (IDLE_MS > 0) {
    console.log(
      `idle server CPU over ${fmt(IDLE_MS / 1000)} s: ${fmt(idleBefore * 100)}% of a core with no client, ` +
        `${fmt(idleAfter * 100)}% with ${CLIENTS} (keep-alive pings, credential re-checks, metrics)`,
    );
  }
  const windowStart = process.hrtime.bigint() / 1000n;
  const fan = await round("fan-out", TASKS, CLIENTS);
  // V8's profile timestamps are CLOCK_MONOTONIC microseconds, as process.hrtime is.
  if (process.env.BENCH_CPU_PROF) {
    console.log(`cpu profile window of the fan-out round: ${windowStart}-${process.hrtime.bigint() / 1000n} µs`);
  }
  print(`fan-out, ${CLIENTS} clients`, fan);
  const perDeliveryUs = ((fan.cpuMs - reference.cpuMs) * 1000) / (fan.delivered - reference.delivered);
  console.log(
    `server CPU per extra delivery (fan-out round minus reference, idle work included): ${fmt(perDeliveryUs)} µs; ` +
      `reconnects ${Math.max(0, fan.problems.connects - CLIENTS - 1)}`,
  );

  // The floor: the same connections, a frame of the same size, handed to each socket in one plain loop.
  console.log(await floorLine(server, fan.spans, CLIENTS));

  const heapBefore = before.heapUsed + before.external;
  const heapAfter = after.heapUsed + after.external;
  const p99 = percentile(fan.fromReturn, 99);
  const refP99 = percentile(reference.fromReturn, 99);
  console.log(
    `server memory: RSS ${mb(before.rss)} MB before, ${mb(after.rss)} MB with ${CLIENTS} connections ` +
      `(${fmt(after.rss / before.rss, 2)}×): ${fmt((after.rss - before.rss) / CLIENTS / 1024)} KiB per connection; ` +
      `JS heap + external ${mb(heapBefore)} → ${mb(heapAfter)} MB (${fmt(heapAfter / heapBefore, 2)}×): ` +
      `${fmt((heapAfter - heapBefore) / CLIENTS / 1024)} KiB per connection (heap ${mb(before.heapUsed)} → ${mb(after.heapUsed)}, ` +
      `external ${mb(before.external)} → ${mb(after.external)}, array buffers ${mb(before.arrayBuffers)} → ${mb(after.arrayBuffers)})`,
  );
  console.log(
    `targets: p99 delivery ${fmt(p99)} ms vs ≤ ${TARGET_P99_MS} ms: ${p99 <= TARGET_P99_MS ? "met" : "MISSED"} ` +
      `(${fmt(p99 / Math.max(0.1, refP99))}× the 1-client reference's ${fmt(refP99)} ms); ` +
      `server RSS ${mb(after.rss)} MB vs ≤ ${mb(TARGET_RSS_BYTES)} MB: ${after.rss <= TARGET_RSS_BYTES ? "met" : "MISSED"}` +
      (fan.delivered < fan.expected ? `; ${fan.expected - fan.delivered} deliveries MISSING` : ""),
  );

  await pool.closeClients();
  await pool.stop();
  await server.stop();
  console.log(`run took ${fmt((performance.now() - started) / 1000)} s; load ${loadAvg()}`);
  process.exit(0);
}

benchEntry(serve, main);

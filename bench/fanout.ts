/**
 * WebSocket fan-out: delivery latency of chat messages to 1,000 subscribers, and the server's memory
 * per 1,000 connections, against a reference delivery to one subscriber measured in the same run.
 *
 *   npm run bench:fanout   (BENCH_CLIENTS=1000, BENCH_MESSAGES=40, BENCH_WARMUP_MESSAGES=10, BENCH_CLIENT_PROCESSES=4;
 *                           BENCH_DATABASE_URL or TEST_DATABASE_URL for a Postgres server;
 *                           BENCH_CPU_PROF=<dir> for a CPU profile of the server process)
 *
 * The server (createServices + createApp, as `npm start` runs them) lives in a child process so its
 * RSS is not mixed with the clients'; the clients are real tRPC WebSocket clients spread over
 * BENCH_CLIENT_PROCESSES client processes (bench/lib/ws-clients.ts), so one client's decoding does not
 * queue behind the others'. Half the clients subscribe to `metrics.live`, half to `chat.onMessage` on
 * one session. Messages are sent one at a time over HTTP; a message's latency to a client is the time
 * from its commit (the server records when `chat.send` resolves, right after the insert commits) to
 * the client's onData, on one clock across processes (bench/lib/clock.ts; every process's offset is
 * printed); the target is judged on it. Also printed: from the mutation's reply (deliveries that beat
 * it count as 0 ms) and from issuing the send. The server's send trace says when it handed each
 * message to the first and to the last subscriber's socket.
 * Once the 1,000 clients are connected, BENCH_WARMUP_MESSAGES messages go to them first, as the
 * reference gets its warm-up: their figures are printed but not judged (the first messages after a
 * thousand subscriptions start pay for the server's and clients' cold paths and the connect phase's
 * garbage), then the judged round of BENCH_MESSAGES.
 */

import { randomBytes } from "node:crypto";
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

const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 1000);
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 40);
const WARMUP_MESSAGES = Number(process.env.BENCH_WARMUP_MESSAGES ?? 10);
const PROCESSES = Number(process.env.BENCH_CLIENT_PROCESSES ?? 4);
const GAP_MS = 100;
const TARGET_P99_MS = 50;
const TARGET_RSS_MB = 100;
/** Every bench message starts with this, so the server's send trace can find it in a frame. */
const MARK = "bench-msg";
const TRACE_RE = new RegExp(`"content":"(${MARK} [^"]*)"`);

function serve() {
  return runBenchServer({
    name: "fanout",
    config: { CHAT_MESSAGES_PER_MINUTE: "10000" },
    setup: async (services, user) => {
      const session = await services.chat.createSession(user, { title: "fan-out bench" });
      return { sessionId: session.id };
    },
    traceKey: (frame) => TRACE_RE.exec(frame)?.[1] ?? null,
    // chat.send resolves right after its insert commits (then it only notifies and starts the reply).
    commits: (services, committed) => {
      const send = services.chat.send.bind(services.chat);
      services.chat.send = async (actor, input) => {
        const sent = await send(actor, input);
        committed(input.content);
        return sent;
      };
    },
  });
}

async function main() {
  const started = performance.now();
  const limits = checkConnectionLimits(CLIENTS, PROCESSES);
  const server = await startBenchServer(fileURLToPath(import.meta.url));
  const { port, token } = server;
  const sessionId = server.extra.sessionId as string;
  const pool = await WsClientPool.start({ url: `ws://127.0.0.1:${port}/trpc`, token, processes: PROCESSES });
  const http = benchHttpClient(server);

  console.log(
    `fan-out bench: ${CLIENTS} clients (${Math.ceil(CLIENTS / 2)} chat.onMessage, ${Math.floor(CLIENTS / 2)} metrics.live) ` +
      `in ${PROCESSES} client processes, ${MESSAGES} messages ${GAP_MS} ms apart, database ${databaseLabel()}` +
      (process.env.BENCH_SERVER_FLAGS ? `; server Node flags ${process.env.BENCH_SERVER_FLAGS}` : ""),
  );
  console.log(machineLine(limits));
  console.log(await clockLine(pool, server));

  async function round(label: string, chatClients: number, messages = MESSAGES) {
    const clientCpuStart = (await pool.collect()).cpuUs;
    const cpuStart = (await server.trace()).cpuUs;
    const sent = new Map<string, Sent>();
    for (let i = 0; i < messages; i++) {
      const content = `${MARK} ${label} ${i} ${randomBytes(4).toString("hex")}`;
      const issued = clock();
      const clientId = randomBytes(8).toString("hex");
      // Same clientId on a retry: the send is idempotent by it.
      await retryReset(() => http.chat.send.mutate({ sessionId, content, clientId }));
      sent.set(content, { issued, returned: clock() });
      await sleep(GAP_MS);
    }
    const expected = messages * chatClients;
    const { arrivals, frames, problems, clientCpuUs } = await pool.gather(sent, expected);
    const { spans, commits, cpuUs } = await server.trace();
    for (const [content, s] of sent) s.committed = commits.get(content);
    const lat = latencies(arrivals, sent);
    const rtt = Float64Array.from([...sent.values()].map((s) => s.returned - s.issued)).sort();
    const cpuMs = (cpuUs - cpuStart) / 1000;
    const clientCpuMs = (clientCpuUs - clientCpuStart) / 1000;
    return { ...lat, messages, expected, rtt, frames, problems, cpuMs, clientCpuMs, spans: sendSpans(spans, sent) };
  }

  const print = (label: string, r: Awaited<ReturnType<typeof round>>) => {
    console.log(
      `${label}: ${r.delivered}/${r.expected} deliveries; from the commit p50 ${fmt(percentile(r.fromCommit, 50))} ms, ` +
        `p99 ${fmt(percentile(r.fromCommit, 99))} ms, max ${fmt(r.fromCommit.at(-1) ?? Number.NaN)} ms ` +
        `(${r.fromCommit.length} timed); after the send returned p50 ${fmt(percentile(r.fromReturn, 50))} ms, ` +
        `p99 ${fmt(percentile(r.fromReturn, 99))} ms, max ${fmt(r.fromReturn.at(-1) ?? Number.NaN)} ms ` +
        `(${r.early} arrived before the reply); from issuing the send p50 ${fmt(percentile(r.fromIssue, 50))} ms, ` +
        `p99 ${fmt(percentile(r.fromIssue, 99))} ms; send round trip p50 ${fmt(percentile(r.rtt, 50))} ms, max ${fmt(r.rtt.at(-1) ?? Number.NaN)} ms`,
    );
    console.log(
      `  server side: last subscriber's frame handed to its socket p50 ${fmt(percentile(r.spans.toLast, 50))} ms, ` +
        `p99 ${fmt(percentile(r.spans.toLast, 99))} ms after the send returned; first-to-last frame p50 ` +
        `${fmt(percentile(r.spans.spread, 50))} ms, max ${fmt(r.spans.spread.at(-1) ?? Number.NaN)} ms; ` +
        `server CPU in the round ${fmt(r.cpuMs, 0)} ms, ${fmt(r.cpuMs / r.messages)} ms per message; client processes' CPU ${fmt(r.clientCpuMs, 0)} ms` +
        (r.problems.errors.length || r.problems.unexpectedCloses
          ? `; ${r.problems.unexpectedCloses} connections closed, errors: ${r.problems.errors.slice(0, 3).join(" | ")}`
          : ""),
    );
  };

  await pool.open([{ spec: { topic: "chat", sessionId }, count: 1 }]);
  await round("warm-up", 1);
  const reference = await round("reference", 1);
  print("reference, 1 subscriber", reference);
  await pool.closeClients();
  await sleep(200);

  const before = await server.memory();
  const chatCount = Math.ceil(CLIENTS / 2);
  const { ms: connectMs } = await pool.open([
    { spec: { topic: "chat", sessionId }, count: chatCount },
    { spec: { topic: "metrics" }, count: CLIENTS - chatCount },
  ]);
  const after = await server.memory();
  const clientRss = await pool.memory();
  console.log(
    `connected ${CLIENTS} subscribers in ${fmt(connectMs)} ms (server sees ${after.connections}); ` +
      `client processes' RSS ${clientRss.map((r) => mb(r)).join(", ")} MB`,
  );
  if (WARMUP_MESSAGES > 0) {
    print(
      `warm-up, the first ${WARMUP_MESSAGES} messages to ${chatCount} chat subscribers (not judged)`,
      await round("first", chatCount, WARMUP_MESSAGES),
    );
  }
  const windowStart = process.hrtime.bigint() / 1000n;
  const fan = await round("fan-out", chatCount);
  // V8's profile timestamps are CLOCK_MONOTONIC microseconds, as process.hrtime is.
  if (process.env.BENCH_CPU_PROF) {
    console.log(`cpu profile window of the fan-out round: ${windowStart}-${process.hrtime.bigint() / 1000n} µs`);
  }
  print(
    `fan-out, ${chatCount} chat subscribers (${fan.frames.chat ?? 0} chat frames; +${CLIENTS - chatCount} on metrics.live, ${fan.frames.metrics ?? 0} metric frames)`,
    fan,
  );

  // The floor: the same connections, a frame of the same size, handed to each socket in one plain loop.
  console.log(await floorLine(server, fan.spans, chatCount));

  // Each send writes the message, the assistant's reply and reads both back: the reference pays that once
  // per message, so what the fan-out round costs beyond it is the cost of the extra deliveries.
  const extraDeliveries = 2 * MESSAGES * (chatCount - 1);
  console.log(
    `server CPU per extra chat delivery (operator message + assistant reply, fan-out round minus reference): ` +
      `${fmt(((fan.cpuMs - reference.cpuMs) * 1000) / extraDeliveries)} µs, metric frames included`,
  );

  const growthMb = (after.rss - before.rss) / 2 ** 20;
  const heapGrowthMb = (after.heapUsed + after.external - before.heapUsed - before.external) / 2 ** 20;
  const perThousand = (growthMb * 1000) / CLIENTS;
  const heapPerThousand = (heapGrowthMb * 1000) / CLIENTS;
  const p99 = percentile(fan.fromCommit, 99);
  // RSS moves with PGlite's and the allocator's pages; the target is judged on the larger of the two figures.
  const judgedMb = Math.max(perThousand, heapPerThousand);
  console.log(
    `server RSS ${mb(before.rss)} MB before, ${mb(after.rss)} MB after connecting: ` +
      `${fmt(growthMb)} MB, ${fmt(perThousand)} MB per 1,000 connections; ` +
      `JS heap + external ${mb(before.heapUsed + before.external)} → ${mb(after.heapUsed + after.external)} MB: ` +
      `${fmt(heapGrowthMb)} MB, ${fmt(heapPerThousand)} MB per 1,000`,
  );
  console.log(
    `targets: p99 delivery from the commit ${fmt(p99)} ms vs ≤ ${TARGET_P99_MS} ms: ${p99 <= TARGET_P99_MS ? "met" : "MISSED"}; ` +
      `memory growth ${fmt(judgedMb)} MB per 1,000 vs ≤ ${TARGET_RSS_MB} MB: ${judgedMb <= TARGET_RSS_MB ? "met" : "MISSED"}; ` +
      `fan-out cost p99 ${fmt(p99 / Math.max(0.1, percentile(reference.fromCommit, 99)))}× the 1-subscriber reference` +
      (fan.delivered < fan.expected ? `; ${fan.expected - fan.delivered} deliveries MISSING` : ""),
  );

  await pool.closeClients();
  await pool.stop();
  await server.stop();
  console.log(`run took ${fmt((performance.now() - started) / 1000)} s; load ${loadAvg()}`);
  process.exit(0);
}

benchEntry(serve, main);

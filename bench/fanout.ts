/**
 * WebSocket fan-out: delivery latency of chat messages to 1,000 subscribers, and the server's memory
 * per 1,000 connections, against a reference delivery to one subscriber measured in the same run.
 *
 *   npm run bench:fanout        (BENCH_CLIENTS=1000, BENCH_MESSAGES=40; BENCH_DATABASE_URL for a Postgres server)
 *
 * The server (createApp over createServices, as `npm start` runs it) lives in a child process so its
 * RSS is not mixed with the clients'. Half the clients subscribe to `metrics.live`, half to
 * `chat.onMessage` on one session. Messages are sent one at a time over HTTP; a message's latency to
 * a client is the time from the `chat.send` mutation returning (the insert committed) to the client's
 * onData. Deliveries that beat the mutation's reply count as 0 ms; the time from issuing the send is
 * printed too.
 */

import { type ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import os from "node:os";
import { fileURLToPath } from "node:url";
import { createTRPCClient, createWSClient, httpBatchLink, wsLink } from "@trpc/client";
import pino from "pino";
import superjson from "superjson";
import WebSocket from "ws";
import { createApp } from "../src/server/app.js";
import { loadConfig } from "../src/server/config.js";
import { openDatabase } from "../src/server/db/database.js";
import { migrate } from "../src/server/db/migrate.js";
import type { AppRouter } from "../src/server/router.js";
import { createServices } from "../src/server/services.js";
import type { Actor } from "../src/shared/roles.js";

const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 1000);
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 40);
const GAP_MS = 100;
const TARGET_P99_MS = 50;
const TARGET_RSS_MB = 100;

type ServerMsg =
  | { kind: "ready"; port: number; token: string; sessionId: string }
  | { kind: "rss"; rss: number; heap: number };

/** The child: the real server, reporting its RSS (after a full GC) on request. */
async function serve() {
  const log = pino({ level: "silent" });
  const url = process.env.BENCH_DATABASE_URL || undefined;
  const schema = `bench_fanout_${randomBytes(4).toString("hex")}`;
  const db = await openDatabase(url ? { url, schema } : {});
  await migrate(db);
  const config = loadConfig({
    PORT: "0",
    HOST: "127.0.0.1",
    WEB_DIST_DIR: "/nonexistent",
    KEYSTORE: "env",
    AGENCY_MASTER_KEY: randomBytes(32).toString("base64"),
    AGENCY_ADMIN_PASSWORD: randomBytes(18).toString("base64url"),
    EXECUTION_ENABLED: "0",
    CHAT_MESSAGES_PER_MINUTE: "10000",
  });
  const services = await createServices(db, log, config);
  await services.start();
  const system: Actor = { kind: "system", id: "bench", name: "bench", role: "admin" };
  await services.auth.createUser(
    { actor: system },
    { username: "bench", role: "operator", password: randomBytes(18).toString("base64url") },
  );
  const user: Actor = { kind: "user", id: "bench", name: "bench", role: "operator" };
  const { token } = await services.auth.createToken({ actor: user }, "fan-out bench");
  const session = await services.chat.createSession(user, { title: "fan-out bench" });
  const app = createApp({ config, log, services });
  await new Promise<void>((resolve) => app.server.listen(0, "127.0.0.1", resolve));
  const { port } = app.server.address() as AddressInfo;
  const reply = (m: ServerMsg) => process.send?.(m);
  process.on("message", async (m: { kind: string }) => {
    if (m.kind === "rss") {
      // Two full collections with a pause between, so garbage from earlier rounds is not counted.
      const gc = (globalThis as { gc?: () => void }).gc;
      gc?.();
      await sleep(200);
      gc?.();
      const m = process.memoryUsage();
      reply({ kind: "rss", rss: m.rss, heap: m.heapUsed + m.external });
    }
    if (m.kind === "stop") {
      await app.close();
      await services.stop();
      if (url) await db.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await db.close();
      process.exit(0);
    }
  });
  reply({ kind: "ready", port, token, sessionId: session.id });
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

const fmt = (n: number) => n.toFixed(1);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const started = performance.now();
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ["serve"], {
    execArgv: [...process.execArgv, "--expose-gc"],
    env: process.env,
  });
  const next = (kind: ServerMsg["kind"]) =>
    new Promise<ServerMsg>((resolve, reject) => {
      const onMsg = (m: ServerMsg) => {
        if (m.kind !== kind) return;
        child.off("message", onMsg);
        resolve(m);
      };
      child.on("message", onMsg);
      child.once("exit", (code) => reject(new Error(`the server process exited (${code})`)));
    });
  const ready = (await next("ready")) as Extract<ServerMsg, { kind: "ready" }>;
  const rss = async () => {
    child.send({ kind: "rss" });
    return (await next("rss")) as Extract<ServerMsg, { kind: "rss" }>;
  };
  const { port, token, sessionId } = ready;
  const http = createTRPCClient<AppRouter>({
    links: [
      httpBatchLink({
        url: `http://127.0.0.1:${port}/trpc`,
        transformer: superjson,
        headers: { Authorization: `Bearer ${token}` },
      }),
    ],
  });

  /** Per message: when the send was issued, when it returned; per client: when each message arrived. */
  const sentAt = new Map<string, { issued: number; returned: number }>();
  const arrivals: { content: string; at: number }[] = [];
  let metricsFrames = 0;

  const openClient = (topic: "chat" | "metrics") =>
    new Promise<() => void>((resolve, reject) => {
      const ws = createWSClient({
        url: `ws://127.0.0.1:${port}/trpc`,
        WebSocket: WebSocket as never,
        connectionParams: { token },
      });
      const client = createTRPCClient<AppRouter>({ links: [wsLink({ client: ws, transformer: superjson })] });
      const close = () => {
        sub.unsubscribe();
        void ws.close();
      };
      const sub =
        topic === "chat"
          ? client.chat.onMessage.subscribe(
              { sessionId },
              {
                onStarted: () => resolve(close),
                onError: reject,
                onData: (d) => {
                  if (d.data.role === "operator") arrivals.push({ content: d.data.content, at: performance.now() });
                },
              },
            )
          : client.metrics.live.subscribe(undefined, {
              onStarted: () => resolve(close),
              onError: reject,
              onData: () => {
                metricsFrames++;
              },
            });
    });

  async function round(label: string, chatClients: number) {
    arrivals.length = 0;
    sentAt.clear();
    for (let i = 0; i < MESSAGES; i++) {
      const content = `${label} ${i} ${randomBytes(4).toString("hex")}`;
      const issued = performance.now();
      await http.chat.send.mutate({ sessionId, content, clientId: randomBytes(8).toString("hex") });
      sentAt.set(content, { issued, returned: performance.now() });
      await sleep(GAP_MS);
    }
    const expected = MESSAGES * chatClients;
    for (let i = 0; i < 100 && arrivals.length < expected; i++) await sleep(100);
    const fromReturn: number[] = [];
    const fromIssue: number[] = [];
    let early = 0;
    for (const a of arrivals) {
      const s = sentAt.get(a.content);
      if (!s) continue;
      if (a.at < s.returned) early++;
      fromReturn.push(Math.max(0, a.at - s.returned));
      fromIssue.push(a.at - s.issued);
    }
    fromReturn.sort((x, y) => x - y);
    fromIssue.sort((x, y) => x - y);
    const rtt = [...sentAt.values()].map((s) => s.returned - s.issued).sort((x, y) => x - y);
    return { delivered: fromReturn.length, expected, early, fromReturn, fromIssue, rtt };
  }

  const print = (label: string, r: Awaited<ReturnType<typeof round>>) => {
    console.log(
      `${label}: ${r.delivered}/${r.expected} deliveries; after the send returned p50 ${fmt(percentile(r.fromReturn, 50))} ms, ` +
        `p99 ${fmt(percentile(r.fromReturn, 99))} ms, max ${fmt(r.fromReturn.at(-1) ?? Number.NaN)} ms ` +
        `(${r.early} arrived before the reply); from issuing the send p50 ${fmt(percentile(r.fromIssue, 50))} ms, ` +
        `p99 ${fmt(percentile(r.fromIssue, 99))} ms; send round trip p50 ${fmt(percentile(r.rtt, 50))} ms, max ${fmt(r.rtt.at(-1) ?? Number.NaN)} ms`,
    );
  };

  console.log(
    `fan-out bench: ${CLIENTS} clients (${Math.ceil(CLIENTS / 2)} chat.onMessage, ${Math.floor(CLIENTS / 2)} metrics.live), ` +
      `${MESSAGES} messages ${GAP_MS} ms apart, database ${process.env.BENCH_DATABASE_URL ? "Postgres server" : "PGlite"}`,
  );
  console.log(
    `machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, load ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );

  const one = await openClient("chat");
  await round("warm-up", 1);
  const reference = await round("reference", 1);
  print("reference, 1 subscriber", reference);
  one();
  await sleep(200);

  const rssBefore = await rss();
  const chatCount = Math.ceil(CLIENTS / 2);
  const closers: (() => void)[] = [];
  const connectStart = performance.now();
  for (let i = 0; i < CLIENTS; i += 50) {
    const batch = Array.from({ length: Math.min(50, CLIENTS - i) }, (_, j) =>
      openClient(i + j < chatCount ? "chat" : "metrics"),
    );
    closers.push(...(await Promise.all(batch)));
  }
  const connectMs = performance.now() - connectStart;
  const rssAfter = await rss();
  console.log(`connected ${CLIENTS} subscribers in ${fmt(connectMs)} ms`);
  const fan = await round("fan-out", chatCount);
  print(
    `fan-out, ${chatCount} chat subscribers (+${CLIENTS - chatCount} on metrics.live, ${metricsFrames} metric frames)`,
    fan,
  );

  const growthMb = (rssAfter.rss - rssBefore.rss) / 2 ** 20;
  const heapGrowthMb = (rssAfter.heap - rssBefore.heap) / 2 ** 20;
  const perThousand = (growthMb * 1000) / CLIENTS;
  const p99 = percentile(fan.fromReturn, 99);
  // RSS moves with PGlite's and the allocator's pages; the target is judged on the larger of the two figures.
  const judgedMb = Math.max(perThousand, (heapGrowthMb * 1000) / CLIENTS);
  console.log(
    `server RSS ${fmt(rssBefore.rss / 2 ** 20)} MB before, ${fmt(rssAfter.rss / 2 ** 20)} MB after connecting: ` +
      `${fmt(growthMb)} MB, ${fmt(perThousand)} MB per 1,000 connections; ` +
      `JS heap + external ${fmt(heapGrowthMb)} MB, ${fmt((heapGrowthMb * 1000) / CLIENTS)} MB per 1,000`,
  );
  console.log(
    `targets: p99 delivery ${fmt(p99)} ms vs ≤ ${TARGET_P99_MS} ms: ${p99 <= TARGET_P99_MS ? "met" : "MISSED"}; ` +
      `memory growth ${fmt(judgedMb)} MB per 1,000 vs ≤ ${TARGET_RSS_MB} MB: ${judgedMb <= TARGET_RSS_MB ? "met" : "MISSED"}; ` +
      `fan-out cost p99 ${fmt(p99 / Math.max(0.1, percentile(reference.fromReturn, 99)))}× the 1-subscriber reference` +
      (fan.delivered < fan.expected ? `; ${fan.expected - fan.delivered} deliveries MISSING` : ""),
  );

  for (const close of closers) close();
  child.send({ kind: "stop" });
  await new Promise((r) => child.once("exit", r));
  console.log(`run took ${fmt((performance.now() - started) / 1000)} s`);
  process.exit(0);
}

if (process.argv[2] === "serve") {
  serve().catch((err) => {
    console.error(err);
    process.exit(1);
  });
} else {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}

/**
 * The server of the WebSocket benches, in a process of its own so its memory is not mixed with the
 * clients': createServices + createApp as `npm start` runs them, on PGlite (in memory) or, with
 * BENCH_DATABASE_URL (or TEST_DATABASE_URL), on a Postgres server in a schema of its own dropped at
 * the end. The bench talks to it over IPC: memory after a full GC, and a trace of WebSocket sends.
 */
import { type ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { createTRPCClient, httpBatchLink } from "@trpc/client";
import pino from "pino";
import superjson from "superjson";
import { WebSocket } from "ws";
import { createApp } from "../../src/server/app.js";
import { loadConfig } from "../../src/server/config.js";
import { openDatabase } from "../../src/server/db/database.js";
import { migrate } from "../../src/server/db/migrate.js";
import type { AppRouter } from "../../src/server/router.js";
import { createServices, type Services } from "../../src/server/services.js";
import type { Actor } from "../../src/shared/roles.js";
import { clock, fmt, percentile, sleep } from "./clock.js";
import type { WsClientPool } from "./ws-clients.js";

/** A Postgres server's URL when the bench should use one; undefined means PGlite. */
export function benchDatabaseUrl(): string | undefined {
  return process.env.BENCH_DATABASE_URL || process.env.TEST_DATABASE_URL || undefined;
}

export function databaseLabel(): string {
  const url = benchDatabaseUrl();
  return url ? `Postgres server (${url.replace(/\/\/[^@/]*@/, "//")})` : "PGlite (in memory, in the server process)";
}

export interface ServerMemory {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

/** Handing one frame of `bytes` to every open WebSocket in one loop: the least a fan-out can cost the server. */
export interface SendFloor {
  sockets: number;
  bytes: number;
  /** Median over the rounds, of the whole loop. */
  wallMs: number;
  cpuMs: number;
}

/** Per trace key: how many frames carried it, when the first and the last were handed to their sockets. */
export interface SendSpan {
  count: number;
  /** Bytes of all its frames. */
  bytes: number;
  first: number;
  last: number;
}

type ServerRequest =
  | { kind: "clock" }
  | { kind: "memory" }
  | { kind: "trace" }
  | { kind: "floor"; bytes: number; rounds: number }
  | { kind: "stop" };
type ServerReply =
  | { kind: "ready"; port: number; token: string; extra: Record<string, string>; wsConnections: number }
  | { kind: "clock"; at: number }
  | ({ kind: "memory"; connections: number } & ServerMemory)
  | { kind: "trace"; spans: Map<string, SendSpan>; commits: Map<string, number>; cpuUs: number }
  | ({ kind: "floor" } & SendFloor)
  | { kind: "stopped" };

export interface ServeOptions {
  name: string;
  /** Extra configuration (over the bench defaults). */
  config?: Record<string, string>;
  /** Creates what the bench needs (a chat session, …); the strings come back to the bench as `extra`. */
  setup?: (services: Services, user: Actor) => Promise<Record<string, string>>;
  /**
   * Finds the key of a data frame (the same key the client processes record), for the send trace:
   * when the server handed a commit's frame to the first and to the last subscriber's socket.
   */
  traceKey?: (frame: string) => string | null;
  /**
   * Wraps what commits the bench's changes (chat.send, …) so the trace also says when each one was
   * committed, by the same key: `committed(key)` right after the commit.
   */
  commits?: (services: Services, committed: (key: string) => void) => void;
}

/** In the server process: starts the server and answers the bench's requests until told to stop. */
export async function runBenchServer(opts: ServeOptions): Promise<void> {
  const log = pino({ level: "silent" });
  const url = benchDatabaseUrl();
  const schema = `bench_${opts.name}_${randomBytes(4).toString("hex")}`;
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
    ...opts.config,
  });
  const services = await createServices(db, log, config);
  await services.start();
  const system: Actor = { kind: "system", id: "bench", name: "bench", role: "admin" };
  await services.auth.createUser(
    { actor: system },
    { username: "bench", role: "operator", password: randomBytes(18).toString("base64url") },
  );
  const user: Actor = { kind: "user", id: "bench", name: "bench", role: "operator" };
  const { token } = await services.auth.createToken({ actor: user }, `${opts.name} bench`);
  const extra = (await opts.setup?.(services, user)) ?? {};

  let spans = new Map<string, SendSpan>();
  let commits = new Map<string, number>();
  opts.commits?.(services, (key) => commits.set(key, clock()));
  /** Every socket that was sent something (each tRPC subscription's "started" reply): the floor's targets. */
  const sockets = new Set<WebSocket>();
  let connections = 0;
  const proto = WebSocket.prototype as unknown as { send: (data: unknown, ...rest: unknown[]) => void };
  const send = proto.send;
  const traceKey = opts.traceKey;
  // The app binds each socket's send when it connects, so this wrapper sits under its buffer cap.
  proto.send = function tracedSend(this: WebSocket, data: unknown, ...rest: unknown[]) {
    send.call(this, data, ...rest);
    if (!sockets.has(this)) {
      sockets.add(this);
      this.once("close", () => sockets.delete(this));
    }
    if (!traceKey || typeof data !== "string") return;
    const key = traceKey(data);
    if (key === null) return;
    const at = clock();
    const s = spans.get(key);
    if (s) {
      s.count++;
      s.bytes += data.length;
      s.last = at;
    } else spans.set(key, { count: 1, bytes: data.length, first: at, last: at });
  };

  const app = createApp({ config, log, services });
  app.server.on("upgrade", (_req, socket) => {
    connections++;
    socket.once("close", () => connections--);
  });
  await new Promise<void>((resolve) => app.server.listen(0, "127.0.0.1", resolve));
  const { port } = app.server.address() as AddressInfo;
  const reply = (m: ServerReply) => process.send?.(m);
  process.on("message", async (m: ServerRequest) => {
    if (m.kind === "clock") reply({ kind: "clock", at: clock() });
    if (m.kind === "memory") {
      // Two full collections with a pause between, so garbage from earlier rounds is not counted.
      const gc = (globalThis as { gc?: () => void }).gc;
      gc?.();
      await sleep(200);
      gc?.();
      const u = process.memoryUsage();
      reply({
        kind: "memory",
        rss: u.rss,
        heapUsed: u.heapUsed,
        external: u.external,
        arrayBuffers: u.arrayBuffers,
        connections,
      });
    }
    if (m.kind === "trace") {
      const cpu = process.cpuUsage();
      reply({ kind: "trace", spans, commits, cpuUs: cpu.user + cpu.system });
      spans = new Map();
      commits = new Map();
    }
    if (m.kind === "floor") {
      // A response to a request id no client has: tRPC clients drop it after parsing it.
      const head = '{"id":"bench-floor","jsonrpc":"2.0","result":{"type":"data","data":"';
      const frame = `${head}${"x".repeat(Math.max(0, m.bytes - head.length - 4))}"}}`;
      const rounds: { wallMs: number; cpuMs: number }[] = [];
      for (let r = 0; r < m.rounds; r++) {
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        // The prototype's send: no tRPC, no buffer cap, no coalescing, no trace.
        for (const ws of sockets) if (ws.readyState === WebSocket.OPEN) send.call(ws, frame);
        const wallMs = performance.now() - t0;
        const c = process.cpuUsage(c0);
        rounds.push({ wallMs, cpuMs: (c.user + c.system) / 1000 });
        await sleep(200);
      }
      const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
      reply({
        kind: "floor",
        sockets: sockets.size,
        bytes: frame.length,
        wallMs: median(rounds.map((r) => r.wallMs)),
        cpuMs: median(rounds.map((r) => r.cpuMs)),
      });
    }
    if (m.kind === "stop") {
      await app.close();
      await services.stop();
      if (url) await db.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await db.close();
      reply({ kind: "stopped" });
      // Let the reply leave; process.exit still writes a --cpu-prof profile.
      setTimeout(() => process.exit(0), 100);
    }
  });
  // The bench went away (it failed): do not stay behind holding the port and the schema.
  process.on("disconnect", () => {
    if (url) void db.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).finally(() => process.exit(1));
    else process.exit(1);
  });
  reply({ kind: "ready", port, token, extra, wsConnections: connections });
}

/** A WebSocket bench's file runs as the bench, or (forked with `serve`) as its server; either exits 1 on an error. */
export function benchEntry(serve: () => Promise<void>, main: () => Promise<void>): void {
  (process.argv[2] === "serve" ? serve() : main()).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}

/** A tRPC HTTP client of the bench server, with its token. */
export function benchHttpClient(server: Pick<BenchServer, "port" | "token">) {
  return createTRPCClient<AppRouter>({
    links: [
      httpBatchLink({
        url: `http://127.0.0.1:${server.port}/trpc`,
        transformer: superjson,
        headers: { Authorization: `Bearer ${server.token}` },
      }),
    ],
  });
}

export interface BenchServer {
  pid: number;
  port: number;
  token: string;
  extra: Record<string, string>;
  memory(): Promise<ServerMemory & { connections: number }>;
  /** Takes (and clears) the send trace and the commit times, with the CPU time (user + system, µs) used so far. */
  trace(): Promise<{ spans: Map<string, SendSpan>; commits: Map<string, number>; cpuUs: number }>;
  /** The server process's clock offset from this one, NTP style over IPC (as the client processes'). */
  clockOffset(rounds?: number): Promise<{ offsetMs: number; rttMs: number }>;
  /** Sends a `bytes` frame to every open connection `rounds` times, timing each loop (see SendFloor). */
  floor(bytes: number, rounds?: number): Promise<SendFloor>;
  stop(): Promise<void>;
}

/**
 * In the bench: forks `entry` with `serve` (the bench's own file, whose `serve` branch calls
 * runBenchServer). BENCH_CPU_PROF=<dir> writes a V8 CPU profile of the server process there;
 * BENCH_SERVER_FLAGS adds Node flags to the server process only (e.g. --max-semi-space-size=64).
 */
export async function startBenchServer(entry: string): Promise<BenchServer> {
  const profDir = process.env.BENCH_CPU_PROF;
  const child: ChildProcess = fork(entry, ["serve"], {
    execArgv: [
      ...process.execArgv,
      "--expose-gc",
      ...(process.env.BENCH_SERVER_FLAGS ?? "").split(/\s+/).filter(Boolean),
      ...(profDir ? ["--cpu-prof", `--cpu-prof-dir=${profDir}`, "--cpu-prof-interval=250"] : []),
    ],
    env: process.env,
    serialization: "advanced",
  });
  const next = <K extends ServerReply["kind"]>(kind: K) =>
    new Promise<Extract<ServerReply, { kind: K }>>((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`the server process exited (${code})`));
      const onMsg = (m: ServerReply) => {
        if (m.kind !== kind) return;
        child.off("message", onMsg);
        child.off("exit", onExit);
        resolve(m as Extract<ServerReply, { kind: K }>);
      };
      child.on("message", onMsg);
      child.once("exit", onExit);
    });
  const ready = await next("ready");
  return {
    pid: child.pid ?? -1,
    port: ready.port,
    token: ready.token,
    extra: ready.extra,
    async memory() {
      child.send({ kind: "memory" } satisfies ServerRequest);
      const { kind: _k, ...m } = await next("memory");
      return m;
    },
    async trace() {
      child.send({ kind: "trace" } satisfies ServerRequest);
      const { spans, commits, cpuUs } = await next("trace");
      return { spans, commits, cpuUs };
    },
    async clockOffset(rounds = 20) {
      let best = { offsetMs: Number.NaN, rttMs: Number.POSITIVE_INFINITY };
      for (let i = 0; i < rounds; i++) {
        const t0 = clock();
        child.send({ kind: "clock" } satisfies ServerRequest);
        const { at } = await next("clock");
        const t1 = clock();
        if (t1 - t0 < best.rttMs) best = { offsetMs: at - (t0 + t1) / 2, rttMs: t1 - t0 };
      }
      return best;
    },
    async floor(bytes, rounds = 5) {
      child.send({ kind: "floor", bytes, rounds } satisfies ServerRequest);
      const { kind: _k, ...f } = await next("floor");
      return f;
    },
    async stop() {
      const exited = new Promise((r) => child.once("exit", r));
      child.send({ kind: "stop" } satisfies ServerRequest);
      await next("stopped");
      await exited;
    },
  };
}

/** The bench's "clock:" line: each client process's and the server's offset from the bench's clock. */
export async function clockLine(pool: WsClientPool, server: BenchServer): Promise<string> {
  const offsets = await pool.clockOffsets();
  const serverOffset = await server.clockOffset();
  const show = (o: { offsetMs: number; rttMs: number }) => `${fmt(o.offsetMs, 3)}±${fmt(o.rttMs / 2, 3)}`;
  return `clock: client processes' offsets from the bench ${offsets.map(show).join(", ")} ms; the server's ${show(serverOffset)} ms`;
}

/**
 * The send floor (a frame of the fan-out's size handed to every connection in one plain loop),
 * against the fan-out's first-to-last frame p50 per subscriber.
 */
export async function floorLine(
  server: BenchServer,
  spans: ReturnType<typeof sendSpans>,
  subscribers: number,
): Promise<string> {
  const floor = await server.floor(Math.round(spans.frameBytes));
  const floorUs = (floor.wallMs * 1000) / floor.sockets;
  const spreadUs = (percentile(spans.spread, 50) * 1000) / Math.max(1, subscribers - 1);
  return (
    `server send floor (raw ws.send of one ${floor.bytes}-byte frame to each of its ${floor.sockets} connections, ` +
    `no tRPC, median of 5 loops): ${fmt(floor.wallMs)} ms, ${fmt(floorUs)} µs per connection ` +
    `(CPU ${fmt((floor.cpuMs * 1000) / floor.sockets)} µs); the fan-out's first-to-last frame p50 is ` +
    `${fmt(spreadUs)} µs per subscriber, ${fmt(spreadUs / floorUs)}× the floor`
  );
}

/** Per commit: from its request's reply to the server handing the frame to the last subscriber's socket, and first-to-last. */
export function sendSpans(spans: Map<string, SendSpan>, sent: Map<string, { returned: number }>) {
  const toLast: number[] = [];
  const spread: number[] = [];
  let frames = 0;
  let bytes = 0;
  for (const [key, s] of spans) {
    const m = sent.get(key);
    if (!m) continue;
    frames += s.count;
    bytes += s.bytes;
    toLast.push(Math.max(0, s.last - m.returned));
    spread.push(s.last - s.first);
  }
  return {
    toLast: Float64Array.from(toLast).sort(),
    spread: Float64Array.from(spread).sort(),
    frameBytes: frames ? bytes / frames : Number.NaN,
  };
}

/**
 * Runs a request, once more if the connection it went out on was reset: Node's HTTP server closes an
 * idle keep-alive connection after 5 s, and the client may pick that connection just as it closes.
 */
export async function retryReset<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    const text = `${err instanceof Error ? `${err.message} ${String((err.cause as Error | undefined)?.cause ?? "")}` : err}`;
    if (!/ECONNRESET|socket hang up|other side closed/.test(text)) throw err;
    return call();
  }
}

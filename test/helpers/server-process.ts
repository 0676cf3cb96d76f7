import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { createTRPCClient, createWSClient, httpBatchLink, wsLink } from "@trpc/client";
import superjson from "superjson";
import WebSocket from "ws";
import { type Database, openDatabase } from "../../src/server/db/database.js";
import type { AppRouter } from "../../src/server/router.js";
import { POSTGRES_URL } from "./databases.js";
import { ADMIN_TOKEN, FAST_ENV } from "./fault-worker.js";

export type Api = ReturnType<typeof createTRPCClient<AppRouter>>;

/** One run of the real server (`src/server/main.ts`) as its own process, with everything it printed. */
export interface ServerRun {
  url: string;
  child: ChildProcess;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  api: Api;
  /** A WebSocket client acting as the bootstrap admin. */
  ws(): { client: Api; close(): void };
  /** Every line it printed on stdout and stderr, in order. */
  lines(): string[];
  /** The last lines it printed, for a failing test's message. */
  output(): string;
}

/**
 * A server that can be stopped (SIGTERM), killed (SIGKILL) and started again on the same database:
 * a PGlite DATA_DIR of its own, or a fresh schema on the Postgres server (TEST_DATABASE_URL).
 * `env` goes on top of the fast execution settings (FAST_ENV); a `DATABASE_URL` in it replaces the
 * test server's (a proxy in front of it, say) while the schema stays this home's.
 */
export class ServerHome {
  readonly dataDir = mkdtempSync(path.join(os.tmpdir(), "agency-restart-"));
  readonly schema = `t_restart_${randomBytes(4).toString("hex")}`;
  readonly runs: ServerRun[] = [];
  current: ServerRun | null = null;

  constructor(
    readonly kind: "pglite" | "postgres",
    private readonly env: Record<string, string>,
  ) {
    if (kind === "postgres" && !POSTGRES_URL) throw new Error("The Postgres server needs TEST_DATABASE_URL.");
  }

  async start(): Promise<ServerRun> {
    if (this.current) throw new Error("A server of this home still runs.");
    const env: Record<string, string> = {
      ...FAST_ENV,
      PORT: "0",
      HOST: "127.0.0.1",
      LOG_LEVEL: "info",
      WEB_DIST_DIR: "/nonexistent",
      START_REFERENCE_WORKER: "0",
      DATA_DIR: this.dataDir,
      ...(this.kind === "postgres" ? { DATABASE_URL: POSTGRES_URL as string, DATABASE_SCHEMA: this.schema } : {}),
      ...this.env,
    };
    const run = await startServer(env);
    this.runs.push(run);
    this.current = run;
    return run;
  }

  /** SIGTERM: the server drains (SHUTDOWN_GRACE_MS) and exits; resolves with its exit code. */
  async stop(): Promise<number | null> {
    const run = this.current;
    if (!run) return null;
    this.current = null;
    if (run.child.exitCode !== null || run.child.signalCode !== null) return run.child.exitCode;
    run.child.kill("SIGTERM");
    const force = setTimeout(() => run.child.kill("SIGKILL"), 30_000);
    const code = await run.exited;
    clearTimeout(force);
    return code;
  }

  /** SIGKILL: no chance to clean up; its leases stay until they expire. */
  async kill(): Promise<void> {
    const run = this.current;
    if (!run) return;
    this.current = null;
    run.child.kill("SIGKILL");
    await run.exited;
  }

  /** Opens the database in this process (a PGlite directory only once its server has stopped). */
  openDatabase(): Promise<Database> {
    return this.kind === "postgres"
      ? openDatabase({ url: POSTGRES_URL, schema: this.schema })
      : openDatabase({ dataDir: this.dataDir });
  }

  async dispose(): Promise<void> {
    const run = this.current;
    this.current = null;
    if (run && run.child.exitCode === null && run.child.signalCode === null) {
      run.child.kill("SIGKILL");
      await run.exited;
    }
    if (this.kind === "postgres") {
      const { default: pg } = await import("pg");
      const client = new pg.Client({ connectionString: POSTGRES_URL });
      await client.connect();
      try {
        await client.query(`DROP SCHEMA IF EXISTS "${this.schema}" CASCADE`);
      } finally {
        await client.end();
      }
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

const START_TIMEOUT_MS = 150_000;

export function httpClient(url: string, token: string): Api {
  return createTRPCClient<AppRouter>({
    links: [
      httpBatchLink({ url: `${url}/trpc`, transformer: superjson, headers: { authorization: `Bearer ${token}` } }),
    ],
  });
}

export function wsClient(url: string, token: string): { client: Api; close(): void } {
  const c = createWSClient({
    url: `${url.replace("http", "ws")}/trpc`,
    WebSocket: WebSocket as never,
    connectionParams: { token },
  });
  return {
    client: createTRPCClient<AppRouter>({ links: [wsLink({ client: c, transformer: superjson })] }),
    close: () => c.close(),
  };
}

/**
 * Starts `src/server/main.ts` as a process of its own with `env` and resolves once it listens; a server
 * that does not start within `startTimeoutMs` is killed. `name` labels its errors.
 */
export function startServer(
  env: Record<string, string>,
  opts: { name?: string; startTimeoutMs?: number } = {},
): Promise<ServerRun> {
  const name = opts.name ?? "The server";
  const startTimeoutMs = opts.startTimeoutMs ?? START_TIMEOUT_MS;
  const child = spawn(process.execPath, ["--import", "tsx", "src/server/main.ts"], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const lines: string[] = [];
  const collect = (stream: NodeJS.ReadableStream | null, onLine?: (line: string) => void) => {
    let buffered = "";
    stream?.on("data", (d: Buffer) => {
      buffered += d.toString();
      const parts = buffered.split("\n");
      buffered = parts.pop() ?? "";
      for (const line of parts) {
        lines.push(line);
        onLine?.(line);
      }
    });
    stream?.on("end", () => {
      if (buffered) lines.push(buffered);
    });
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      // Not left running: a server that does not start in time is killed.
      child.kill("SIGKILL");
      reject(new Error(`${name} did not start within ${startTimeoutMs / 1000} s:\n${lines.join("\n")}`));
    }, startTimeoutMs);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`${name} exited before listening:\n${lines.join("\n")}`));
    });
    collect(child.stderr);
    collect(child.stdout, (line) => {
      const port = /"port":(\d+)/.exec(line)?.[1];
      if (!port || !line.includes("serving the console")) return;
      clearTimeout(timer);
      const url = `http://127.0.0.1:${port}`;
      resolve({
        url,
        child,
        exited,
        lines: () => [...lines],
        output: () => lines.slice(-80).join("\n"),
        ws: () => wsClient(url, ADMIN_TOKEN),
        api: httpClient(url, ADMIN_TOKEN),
      });
    });
  });
}

/**
 * A TCP proxy this test controls, between the server and a database: `cut()` destroys every
 * connection and refuses new ones (the database is unreachable), `restore()` accepts again.
 */
export class TcpProxy {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  async start(): Promise<void> {
    await this.listen(0);
  }

  private async listen(port: number): Promise<void> {
    const server = net.createServer((client) => {
      const upstream = net.connect(this.targetPort, this.targetHost);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on("close", () => this.sockets.delete(s));
        s.on("error", () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve());
    });
    this.server = server;
    this.port = (server.address() as net.AddressInfo).port;
  }

  /** Every connection through the proxy is destroyed; new ones are refused until `restore()`. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = null;
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  async restore(): Promise<void> {
    if (!this.server) await this.listen(this.port);
  }

  async close(): Promise<void> {
    await this.cut();
  }
}

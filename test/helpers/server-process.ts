import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createTRPCClient, createWSClient, httpBatchLink, wsLink } from "@trpc/client";
import superjson from "superjson";
import WebSocket from "ws";
import { type Database, openDatabase } from "../../src/server/db/database.js";
import type { AppRouter } from "../../src/server/router.js";
import { POSTGRES_URL } from "./databases.js";
import { ADMIN_TOKEN } from "./fault-worker.js";

export type Api = ReturnType<typeof createTRPCClient<AppRouter>>;

/** One live process of the real server (`src/server/main.ts`). */
export interface ServerProcess {
  url: string;
  port: number;
  child: ChildProcess;
  exited: Promise<void>;
  /** HTTP client acting as the bootstrap admin (ADMIN_TOKEN). */
  api: Api;
  /** A WebSocket client acting as the bootstrap admin. */
  ws(): { client: Api; close(): void };
  /** The last lines it printed, for a failing test's message. */
  output(): string;
}

/**
 * Where a restartable server keeps its data: a PGlite data directory of its own, or a fresh schema
 * on the Postgres server. Every process started from it opens the same database, one at a time.
 */
export interface ServerHome {
  kind: "pglite" | "postgres";
  /** The live process, if any. */
  current: ServerProcess | null;
  start(): Promise<ServerProcess>;
  /** SIGKILL: the process gets no chance to clean up (its leases stay until they expire). */
  kill(): Promise<void>;
  /** SIGTERM, and SIGKILL after 15 s. */
  stop(): Promise<void>;
  /** Opens the database in this process (a PGlite directory only once its server has stopped). */
  openDatabase(): Promise<Database>;
  /** Stops the server if it runs and deletes the data directory or drops the schema. */
  dispose(): Promise<void>;
}

/** Generous: on a loaded 2-core machine a start (tsx, PGlite's WASM, migrations) has taken over a minute. */
const START_TIMEOUT_MS = 150_000;

export function serverHome(kind: "pglite" | "postgres", env: Record<string, string>): ServerHome {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "agency-property-"));
  const schema = `t_property_${randomBytes(4).toString("hex")}`;
  if (kind === "postgres" && !POSTGRES_URL) throw new Error("The Postgres server needs TEST_DATABASE_URL.");
  const fullEnv: Record<string, string> = {
    PORT: "0",
    HOST: "127.0.0.1",
    LOG_LEVEL: "info",
    WEB_DIST_DIR: "/nonexistent",
    START_REFERENCE_WORKER: "0",
    // Vitest sets DEV in its own environment; inherited, it would make each server start Vite's dev server.
    DEV: "0",
    DATA_DIR: dataDir,
    ...(kind === "postgres" ? { DATABASE_URL: POSTGRES_URL as string, DATABASE_SCHEMA: schema } : {}),
    ...env,
  };
  const home: ServerHome = {
    kind,
    current: null,
    async start() {
      if (home.current) throw new Error("A server of this home still runs: a PGlite directory has one process.");
      home.current = await startServerProcess(fullEnv);
      return home.current;
    },
    async kill() {
      const s = home.current;
      if (!s) return;
      s.child.kill("SIGKILL");
      await s.exited;
      home.current = null;
    },
    async stop() {
      const s = home.current;
      if (!s) return;
      if (s.child.exitCode === null && s.child.signalCode === null) {
        s.child.kill("SIGTERM");
        const force = setTimeout(() => s.child.kill("SIGKILL"), 15_000);
        await s.exited;
        clearTimeout(force);
      }
      home.current = null;
    },
    openDatabase: () => (kind === "postgres" ? openDatabase({ url: POSTGRES_URL, schema }) : openDatabase({ dataDir })),
    async dispose() {
      await home.stop();
      if (kind === "postgres") {
        const db = await openDatabase({ url: POSTGRES_URL, schema });
        try {
          await db.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        } finally {
          await db.close();
        }
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return home;
}

function startServerProcess(env: Record<string, string>): Promise<ServerProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/server/main.ts"], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const lines: string[] = [];
  const keep = (d: Buffer) => {
    lines.push(d.toString());
    if (lines.length > 200) lines.splice(0, lines.length - 200);
  };
  child.stderr?.on("data", keep);
  return new Promise((resolve, reject) => {
    let buffered = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`The server did not start within ${START_TIMEOUT_MS / 1000} s:\n${lines.join("")}`));
    }, START_TIMEOUT_MS);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`The server exited before listening:\n${lines.join("")}`));
    });
    child.stdout?.on("data", (d: Buffer) => {
      keep(d);
      buffered += d.toString();
      for (const line of buffered.split("\n")) {
        const port = /"port":(\d+)/.exec(line)?.[1];
        if (port && line.includes("serving the console")) {
          clearTimeout(timer);
          const url = `http://127.0.0.1:${port}`;
          resolve({
            url,
            port: Number(port),
            child,
            exited,
            api: createTRPCClient<AppRouter>({
              links: [
                httpBatchLink({
                  url: `${url}/trpc`,
                  transformer: superjson,
                  headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
                }),
              ],
            }),
            ws() {
              const c = createWSClient({
                url: `ws://127.0.0.1:${port}/trpc`,
                WebSocket: WebSocket as never,
                connectionParams: { token: ADMIN_TOKEN },
              });
              return {
                client: createTRPCClient<AppRouter>({ links: [wsLink({ client: c, transformer: superjson })] }),
                close: () => c.close(),
              };
            },
            output: () => lines.join("").slice(-6000),
          });
        }
      }
      buffered = buffered.slice(buffered.lastIndexOf("\n") + 1);
    });
  });
}

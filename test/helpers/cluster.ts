import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createTRPCClient, createWSClient, httpBatchLink, wsLink } from "@trpc/client";
import superjson from "superjson";
import WebSocket from "ws";
import type { AppRouter } from "../../src/server/router.js";
import { POSTGRES_URL } from "./databases.js";
import { ADMIN_TOKEN, FAST_ENV } from "./fault-worker.js";

const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;

export type Api = ReturnType<typeof createTRPCClient<AppRouter>>;

/** One server process (`src/server/main.ts`) of a cluster sharing one Postgres schema. */
export interface ClusterNode {
  name: string;
  url: string;
  port: number;
  child: ChildProcess;
  exited: Promise<void>;
  /** HTTP client acting as the bootstrap admin (ADMIN_TOKEN). */
  api: Api;
  /** Clients acting with another API token. */
  httpAs(token: string): Api;
  wsAs(token: string): { client: Api; close(): void };
  /** Recent output, for a failing test's message. */
  output(): string;
}

export interface Cluster {
  schema: string;
  nodes: ClusterNode[];
  /** Starts one more process on the same schema. */
  add(name: string): Promise<ClusterNode>;
  /** SIGTERM every live process (SIGKILL after a grace period), then drops the schema. */
  stop(): Promise<void>;
}

export function httpClient(url: string, token: string): Api {
  return createTRPCClient<AppRouter>({
    links: [
      httpBatchLink({ url: `${url}/trpc`, transformer: superjson, headers: { authorization: `Bearer ${token}` } }),
    ],
  });
}

function wsClient(port: number, token: string) {
  const c = createWSClient({
    url: `ws://127.0.0.1:${port}/trpc`,
    WebSocket: WebSocket as never,
    connectionParams: { token },
  });
  return {
    client: createTRPCClient<AppRouter>({ links: [wsLink({ client: c, transformer: superjson })] }),
    close: () => c.close(),
  };
}

async function startNode(
  name: string,
  env: Record<string, string>,
  dataDir: string,
  startTimeoutMs = START_TIMEOUT_MS,
): Promise<ClusterNode> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/server/main.ts"], {
    env: { ...process.env, ...env, DATA_DIR: path.join(dataDir, name) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const lines: string[] = [];
  const keep = (d: Buffer) => {
    lines.push(d.toString());
    if (lines.length > 200) lines.splice(0, lines.length - 200);
  };
  child.stderr?.on("data", keep);
  const port = await new Promise<number>((resolve, reject) => {
    let buffered = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${name} did not start within ${startTimeoutMs / 1000} s:\n${lines.join("")}`));
    }, startTimeoutMs);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`${name} exited before listening:\n${lines.join("")}`));
    });
    child.stdout?.on("data", (d: Buffer) => {
      keep(d);
      buffered += d.toString();
      for (const line of buffered.split("\n")) {
        const port = /"port":(\d+)/.exec(line)?.[1];
        if (port && line.includes("serving the console")) {
          clearTimeout(timer);
          resolve(Number(port));
        }
      }
      buffered = buffered.slice(buffered.lastIndexOf("\n") + 1);
    });
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    name,
    url,
    port,
    child,
    exited,
    api: httpClient(url, ADMIN_TOKEN),
    httpAs: (token) => httpClient(url, token),
    wsAs: (token) => wsClient(port, token),
    output: () => lines.join("").slice(-6000),
  };
}

/**
 * One server process on its own embedded database (PGlite in a fresh DATA_DIR) with the defaults of `npm start`
 * (the built-in reference worker included) and `env` on top; the clients act as the bootstrap admin (ADMIN_TOKEN).
 * `dispose` SIGKILLs it if it still runs and deletes its data.
 */
export async function startSoloServer(
  env: Record<string, string> = {},
): Promise<ClusterNode & { dispose(): Promise<void> }> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "agency-solo-"));
  const fullEnv: Record<string, string> = {
    KEYSTORE: "env",
    AGENCY_MASTER_KEY: randomBytes(32).toString("base64"),
    AGENCY_ADMIN_PASSWORD: "solo-server-password",
    AGENCY_BOOTSTRAP_TOKEN: ADMIN_TOKEN,
    PORT: "0",
    HOST: "127.0.0.1",
    LOG_LEVEL: "info",
    WEB_DIST_DIR: "/nonexistent",
    DATABASE_URL: "",
    ...env,
  };
  let node: ClusterNode;
  try {
    // A fresh embedded database applies every migration first: slow on a busy machine.
    node = await startNode("solo", fullEnv, dataDir, 180_000);
  } catch (err) {
    // A process that did not start was killed; it may still be closing its files.
    rmSync(dataDir, { recursive: true, force: true, maxRetries: 20 });
    throw err;
  }
  return {
    ...node,
    async dispose() {
      if (node.child.exitCode === null && node.child.signalCode === null) node.child.kill("SIGKILL");
      await node.exited;
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Server processes on the Postgres server at TEST_DATABASE_URL, all on one fresh schema, with the
 * fast execution settings of the fault tests and `env` on top. They start one after another: the
 * first applies the migrations and makes the bootstrap admin (ADMIN_TOKEN), the others find them.
 */
export async function startCluster(names: string[], env: Record<string, string>): Promise<Cluster> {
  if (!POSTGRES_URL) throw new Error("A cluster needs a Postgres server: set TEST_DATABASE_URL.");
  const schema = `t_cluster_${randomBytes(4).toString("hex")}`;
  const fullEnv: Record<string, string> = {
    ...FAST_ENV,
    PORT: "0",
    HOST: "127.0.0.1",
    LOG_LEVEL: "info",
    WEB_DIST_DIR: "/nonexistent",
    START_REFERENCE_WORKER: "0",
    DATABASE_URL: POSTGRES_URL,
    DATABASE_SCHEMA: schema,
    ...env,
  };
  const nodes: ClusterNode[] = [];
  // Each process's own files (workspaces, keys if any); the database is what they share.
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "agency-cluster-"));
  const cluster: Cluster = {
    schema,
    nodes,
    async add(name) {
      const node = await startNode(name, fullEnv, dataDir);
      nodes.push(node);
      return node;
    },
    async stop() {
      await Promise.all(
        nodes.map(async (n) => {
          if (n.child.exitCode !== null || n.child.signalCode !== null) return;
          n.child.kill("SIGTERM");
          const timer = setTimeout(() => n.child.kill("SIGKILL"), STOP_TIMEOUT_MS);
          await n.exited;
          clearTimeout(timer);
        }),
      );
      const { default: pg } = await import("pg");
      const client = new pg.Client({ connectionString: POSTGRES_URL });
      await client.connect();
      try {
        await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await client.end();
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
  };
  try {
    for (const name of names) await cluster.add(name);
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { POSTGRES_URL } from "./databases.js";
import { ADMIN_TOKEN, FAST_ENV } from "./fault-worker.js";
import { type Api, httpClient, startServer, wsClient } from "./server-process.js";

const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;

export type { Api };

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

async function startNode(
  name: string,
  env: Record<string, string>,
  dataDir: string,
  startTimeoutMs = START_TIMEOUT_MS,
): Promise<ClusterNode> {
  const run = await startServer({ ...env, DATA_DIR: path.join(dataDir, name) }, { name, startTimeoutMs });
  return {
    name,
    url: run.url,
    port: Number(new URL(run.url).port),
    child: run.child,
    exited: run.exited.then(() => undefined),
    api: run.api,
    httpAs: (token) => httpClient(run.url, token),
    wsAs: (token) => wsClient(run.url, token),
    output: run.output,
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

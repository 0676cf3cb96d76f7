import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { WorkerInput } from "../../shared/workers.js";
import { type Logger, relayLogLine } from "../logger.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

export interface ReferenceWorkerChild {
  worker: WorkerInput;
  pid: number | undefined;
  stop(): Promise<void>;
}

/** `<tmpdir>/agent-agency-workspaces`, or a sibling of DATA_DIR when the temporary directory lies inside it. */
export function defaultWorkspacesDir(dataDir: string): string {
  const data = path.resolve(dataDir);
  const dir = path.join(os.tmpdir(), "agent-agency-workspaces");
  const inside = dir === data || dir.startsWith(data + path.sep);
  return inside ? `${data}-workspaces` : dir;
}

/** What the server passes on to its reference worker: the basics a process needs and the worker's own settings. */
const INHERITED_ENV = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "NODE_OPTIONS", "NODE_EXTRA_CA_CERTS"];

/**
 * OpenTelemetry's settings (OTEL_*): with an endpoint the worker exports a span for each run, a child of the
 * try's `traceparent`. Not the service name: the worker reports as a service of its own.
 */
const isTelemetryVar = (name: string) => name.startsWith("OTEL_") && name !== "OTEL_SERVICE_NAME";

/**
 * Settings of a worker run on its own (`npm run worker`) that the server's worker does not take: it serves the
 * `script` capability only, and command-line agents (with the API keys they name) belong on a worker of their own.
 */
const STANDALONE_ONLY = ["WORKER_AGENTS", "WORKER_AGENTS_FILE"];

/**
 * The reference worker's environment: never the server's whole environment, which may hold the master key
 * (`AGENCY_MASTER_KEY`), `DATABASE_URL` with its password or the bootstrap token. Scripts run in the sandbox
 * with a minimal environment of their own anyway; this keeps those secrets out of the worker process too.
 */
export function referenceWorkerEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(env)) {
    if (STANDALONE_ONLY.includes(name)) continue;
    if (value !== undefined && (INHERITED_ENV.includes(name) || name.startsWith("WORKER_") || isTelemetryVar(name))) {
      out[name] = value;
    }
  }
  return out;
}

/**
 * Starts the reference worker (`src/worker/main.ts`) as a child process on a free loopback port with
 * a fresh token, and resolves with it as a configuration worker named `reference` once it listens.
 */
export function startReferenceWorkerChild(log: Logger, dataDir: string): Promise<ReferenceWorkerChild> {
  const token = randomBytes(24).toString("base64url");
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "src/worker/main.ts")], {
    cwd: ROOT,
    env: {
      ...referenceWorkerEnv(process.env),
      WORKER_PORT: "0",
      WORKER_HOST: "127.0.0.1",
      WORKER_TOKEN: token,
      WORKER_NAME: "reference",
      // The worker stops when the IPC channel below closes (this process gone), from its first moment on.
      WORKER_LIFELINE: "ipc",
      WORKER_CAPABILITIES: "script",
      // Workspaces stay out of DATA_DIR (the worker's default is under the system's temporary directory), so no
      // path to a workspace ever leads through the directory that holds the master key.
      WORKER_WORKSPACES_DIR: process.env.WORKER_WORKSPACES_DIR ?? defaultWorkspacesDir(dataDir),
    },
    // The IPC channel is the child's lifeline: it closes when this process ends, even by SIGKILL, and the worker then
    // stops (killing its scripts' process groups) instead of living on as an orphan. Nothing is sent over it.
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  // The channel must not keep this process alive by itself.
  child.channel?.unref();
  // A child left behind by an abrupt exit of ours would hold the port and run scripts unsupervised.
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));

  return new Promise((resolve, reject) => {
    let started = false;
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`The reference worker did not start within 30 s. ${stderr}`));
    }, 30_000);
    child.once("exit", (code, signal) => {
      process.removeListener("exit", killOnExit);
      if (!started) {
        clearTimeout(timer);
        reject(new Error(`The reference worker exited (${signal ?? code}) before listening: ${stderr.trim()}`));
      } else {
        log.warn({ code, signal }, "the reference worker exited");
      }
    });
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.on("line", (line) => {
      // Its pino lines go through our log's destination: one stream for the operator, pretty or JSON as ours is.
      relayLogLine(log, line);
      if (started) return;
      let parsed: { url?: unknown } | null = null;
      try {
        parsed = JSON.parse(line) as { url?: unknown };
      } catch {
        return;
      }
      if (typeof parsed?.url !== "string") return;
      started = true;
      clearTimeout(timer);
      resolve({
        pid: child.pid,
        worker: {
          name: "reference",
          url: parsed.url,
          capabilities: ["script"],
          maxConcurrency: 4,
          token,
        },
        async stop() {
          if (child.exitCode !== null || child.signalCode !== null) return;
          child.kill("SIGTERM");
          const force = setTimeout(() => child.kill("SIGKILL"), 10_000).unref();
          await exited;
          clearTimeout(force);
        },
      });
    });
  });
}

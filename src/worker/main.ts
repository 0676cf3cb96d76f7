import pino from "pino";
import { startTelemetry } from "../server/telemetry/setup.js";
import { type Agent, loadAgents } from "./agents.js";
import { loadWorkerConfig, sandboxOptionsFrom } from "./config.js";
import { createReferenceWorker } from "./reference.js";
import { createScriptSandbox, sandboxUnavailableMessage } from "./sandbox.js";
import { prepareWorkspacesDir } from "./workspace.js";

// `npm run worker`: the reference worker as its own process, configured by WORKER_* variables.
/** Set once the worker listens: stops it, aborting its runs and killing their scripts. */
let stop: ((signal: string) => Promise<void>) | null = null;

/**
 * Started by the agency server (src/server/execution/reference-worker.ts) with an IPC channel: the channel closes
 * when the server is gone, however it ended (SIGKILL included), and this worker stops with it, scripts and all.
 * Watched from the start: a server that dies while this worker is still loading must not leave it running for good.
 */
function watchParent() {
  // Said by the server rather than read off process.channel, which is gone once the channel closed (under tsx).
  if (process.env.WORKER_LIFELINE !== "ipc") return;
  // Closed already (the server died while this module was loading): nothing runs yet.
  if (!process.connected) process.exit(0);
  process.once("disconnect", () => (stop ? void stop("parent exited") : process.exit(0)));
}

async function main() {
  watchParent();
  let config: ReturnType<typeof loadWorkerConfig>;
  try {
    config = loadWorkerConfig();
  } catch (err) {
    console.error((err as Error).message);
    process.exit(2);
  }
  // Written synchronously: a line is never left buffered at exit. When stdout leads nowhere (the server that reads it
  // is gone), pino stops writing on the first EPIPE, whereas a buffered line flushed at exit would be retried forever
  // (sonic-boom's flushSync) and hold the process open as an orphan.
  const log = pino(
    { level: config.WORKER_LOG_LEVEL, base: { worker: config.WORKER_NAME } },
    pino.destination({ dest: 1, sync: true }),
  );
  try {
    await prepareWorkspacesDir(config.WORKER_WORKSPACES_DIR);
  } catch (err) {
    console.error(`WORKER_WORKSPACES_DIR: ${(err as Error).message}`);
    process.exit(2);
  }
  // With OTEL_EXPORTER_OTLP_ENDPOINT (passed on by the agency to its reference worker), each run exports a span.
  let telemetry: ReturnType<typeof startTelemetry>;
  try {
    telemetry = startTelemetry({ serviceName: "agent-agency-worker", log });
  } catch (err) {
    console.error((err as Error).message);
    process.exit(2);
  }
  let agents: Map<string, Agent>;
  try {
    agents = loadAgents({
      json: config.WORKER_AGENTS,
      file: config.WORKER_AGENTS_FILE,
      env: process.env,
      scriptCapabilities: config.WORKER_CAPABILITIES,
      workspacesDir: config.WORKER_WORKSPACES_DIR,
      sandboxed: config.WORKER_SANDBOX !== "off",
    });
  } catch (err) {
    console.error((err as Error).message);
    process.exit(2);
  }
  const sandbox = createScriptSandbox(sandboxOptionsFrom(config));
  // Probed once, here: a worker that cannot sandbox still starts (and says so on /health), but refuses scripts.
  const sandboxStatus = await sandbox.status();
  if (sandboxStatus.mode === "off") {
    log.warn(
      { sandbox: "off" },
      "WORKER_SANDBOX=off: scripts run UNSANDBOXED with this worker's user, environment-free but able to read and " +
        "write whatever that user can (DATA_DIR, the master key, other workspaces) and to use the network",
    );
  } else if (!sandboxStatus.ready) {
    log.error({ sandbox: "bubblewrap" }, `${sandboxUnavailableMessage(sandboxStatus.reason)}; every script is refused`);
  }
  for (const agent of agents.values()) {
    if (!agent.network) continue;
    log.warn(
      { agent: agent.capability },
      `agent '${agent.capability}' runs with the host's network (network: true): it can reach the internet and any ` +
        "service listening on this host, loopback included; its files, environment and processes stay confined",
    );
  }
  const worker = createReferenceWorker({
    sandbox,
    name: config.WORKER_NAME,
    capabilities: config.WORKER_CAPABILITIES,
    ...(config.WORKER_TOKEN ? { token: config.WORKER_TOKEN } : {}),
    maxConcurrency: config.WORKER_MAX_CONCURRENCY,
    workspacesDir: config.WORKER_WORKSPACES_DIR,
    killGraceMs: config.WORKER_KILL_GRACE_MS,
    checkTimeoutMs: config.WORKER_CHECK_TIMEOUT_SEC * 1000,
    heartbeatMs: config.WORKER_HEARTBEAT_MS,
    detachedGraceMs: config.WORKER_DETACHED_GRACE_MS,
    logger: log,
    agents,
    repoPolicy: {
      allowedHosts: config.WORKER_GIT_ALLOWED_HOSTS,
      localRoots: config.WORKER_GIT_LOCAL_ROOTS,
      workspacesDir: config.WORKER_WORKSPACES_DIR,
    },
  });
  const { url, port } = await worker.listen(config.WORKER_PORT, config.WORKER_HOST);
  log.info(
    {
      url,
      port,
      capabilities: [...config.WORKER_CAPABILITIES, ...agents.keys()],
      // Names and settings only: the passed-through variables' values never reach a log line.
      agents: Object.fromEntries(
        [...agents.values()].map((a) => [
          a.capability,
          { command: a.command, prompt: a.prompt, network: a.network, env: a.env, timeoutMs: a.timeoutMs },
        ]),
      ),
      maxConcurrency: config.WORKER_MAX_CONCURRENCY,
      heartbeatMs: config.WORKER_HEARTBEAT_MS,
      workspacesDir: config.WORKER_WORKSPACES_DIR,
      auth: config.WORKER_TOKEN ? "bearer token" : "none",
      tracing: telemetry.endpoint ?? "off",
      sandbox:
        sandboxStatus.mode === "off"
          ? "off (unsandboxed)"
          : sandboxStatus.ready
            ? { mode: "bubblewrap", network: sandbox.network, limits: sandbox.limits }
            : "bubblewrap unavailable: scripts are refused",
    },
    `reference worker listening on ${url}`,
  );

  let stopping = false;
  stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, inFlight: worker.inFlight() }, "shutting down: aborting running tasks");
    const force = setTimeout(() => {
      log.error("shutdown took too long; exiting");
      process.exit(1);
    }, 20_000).unref();
    try {
      await worker.close();
      await telemetry.shutdown();
      clearTimeout(force);
      log.info("stopped");
      process.exit(0);
    } catch (err) {
      log.error({ err }, "shutdown failed");
      process.exit(1);
    }
  };
  process.on("SIGINT", () => void stop?.("SIGINT"));
  process.on("SIGTERM", () => void stop?.("SIGTERM"));
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});

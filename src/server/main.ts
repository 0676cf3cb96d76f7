import { createApp } from "./app.js";
import { loadConfig } from "./config.js";
import { DbAvailability } from "./db/availability.js";
import { openDatabase } from "./db/database.js";
import { migrate } from "./db/migrate.js";
import { type ReferenceWorkerChild, startReferenceWorkerChild } from "./execution/reference-worker.js";
import { resolveLogFormat } from "./log-pretty.js";
import { createLogger } from "./logger.js";
import { createServices } from "./services.js";
import { announceStart, consoleUrl } from "./start-banner.js";
import { VERSION } from "./system/service.js";
import { startTelemetry } from "./telemetry/setup.js";

async function main() {
  const config = loadConfig();
  // One up/down state for the database, fed by its calls and by every log line that carries a
  // connectivity error: an outage is one "unreachable" line and one "reachable again" line.
  const availability = new DbAvailability();
  // Pretty lines and a banner on a terminal; JSON lines for a pipe, a file or LOG_FORMAT=json.
  const logFormat = resolveLogFormat(config.LOG_FORMAT, process.stdout.isTTY);
  const log = createLogger(config.LOG_LEVEL, { logMethod: availability.logHook() }, { format: logFormat });
  availability.attach(log);
  // OpenTelemetry traces over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set; nothing installed otherwise.
  const telemetry = startTelemetry({ serviceName: "agent-agency", serviceVersion: VERSION, log });
  if (telemetry.endpoint)
    log.info({ endpoint: telemetry.endpoint }, "OpenTelemetry traces are exported over OTLP/HTTP");

  const db = await openDatabase({
    url: config.DATABASE_URL,
    schema: config.DATABASE_SCHEMA,
    dataDir: config.dataDir,
    availability,
  });
  const applied = await migrate(db);
  log.info(
    { database: db.kind, applied, location: db.kind === "pglite" ? config.dataDir : "postgres server" },
    applied.length ? "migrations applied" : "database schema is current",
  );
  const services = await createServices(db, log, config);
  // A generated first-admin password is shown once, in the banner below; a start that fails before it still shows it.
  const signIn = services.auth.takeFirstStartSignIn();
  try {
    await serve();
  } catch (err) {
    if (signIn) announceStart(log, logFormat, { url: null, port: 0, dev: config.DEV, signIn });
    throw err;
  }

  async function serve() {
    let reference: ReferenceWorkerChild | undefined;
    if (config.startReferenceWorker && config.EXECUTION_ENABLED) {
      if (config.DATABASE_URL) {
        log.warn(
          'START_REFERENCE_WORKER=1 on a Postgres server: the reference worker registers as "reference" at a loopback URL of this process; run it on one process of a cluster at most',
        );
      }
      reference = await startReferenceWorkerChild(log, config.dataDir);
      log.info({ url: reference.worker.url }, "reference worker started (START_REFERENCE_WORKER=0 turns it off)");
    }
    await services.start(reference ? [reference.worker] : []);

    const app = createApp({ config, log, services });
    let vite: { close(): Promise<void> } | undefined;
    if (config.DEV) {
      // Same process, same port: Vite serves the console's sources and its HMR socket rides on our server.
      const { createServer } = await import("vite");
      const devServer = await createServer({
        server: { middlewareMode: true, hmr: { server: app.server } },
        appType: "spa",
      });
      app.serveWebWith(devServer.middlewares);
      vite = devServer;
    }

    await new Promise<void>((resolve, reject) => {
      app.server.once("error", reject);
      app.server.listen(config.PORT, config.HOST, () => resolve());
    });
    const address = app.server.address();
    const port = typeof address === "object" && address ? address.port : config.PORT;
    const url = consoleUrl({ publicUrl: config.PUBLIC_URL, host: config.HOST, port });
    announceStart(log, logFormat, { url, port, dev: config.DEV, signIn });

    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal, graceMs: config.SHUTDOWN_GRACE_MS }, "shutting down");
      // The engine drains for up to SHUTDOWN_GRACE_MS, then hands the rest back; past that and 10 s more, exit anyway.
      const force = setTimeout(() => {
        log.error("shutdown did not finish in time; exiting");
        process.exit(1);
      }, config.SHUTDOWN_GRACE_MS + 10_000).unref();
      try {
        await app.close();
        await services.stop();
        await reference?.stop();
        await vite?.close();
        await db.close();
        // The spans of the drain and the hand-back go out before the process does.
        await telemetry.shutdown();
        clearTimeout(force);
        log.info("stopped");
        process.exit(0);
      } catch (err) {
        log.error({ err }, "shutdown failed");
        process.exit(1);
      }
    };
    process.on("SIGINT", () => void stop("SIGINT"));
    process.on("SIGTERM", () => void stop("SIGTERM"));
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});

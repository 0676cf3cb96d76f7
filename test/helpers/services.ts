import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import pino from "pino";
import { loadConfig } from "../../src/server/config.js";
import { createServices, type Services } from "../../src/server/services.js";
import type { Actor, Role } from "../../src/shared/roles.js";
import { freshDatabase, type TestDatabase } from "./databases.js";

export const silentLog = pino({ level: "silent" });

export function actor(role: Role = "operator", id = `${role}-1`): Actor {
  return { kind: "user", id, name: id, role };
}

export interface Harness {
  db: TestDatabase;
  services: Services;
  dispose(): Promise<void>;
}

/**
 * The default configuration with a DATA_DIR of its own (a temporary folder): the file keystore's master key and
 * the provenance trusted-keys file of each fresh database stay out of the project's ./data, and no test pins
 * another test's key.
 */
export function testConfig(env: Record<string, string> = {}) {
  const dataDir = mkdtempSync(path.join(tmpdir(), "agency-test-data-"));
  return loadConfig({ DATA_DIR: dataDir, ...env });
}

export async function harness(kind: "pglite" | "postgres"): Promise<Harness> {
  const db = await freshDatabase(kind);
  const services = await createServices(db, silentLog, testConfig());
  return {
    db,
    services,
    async dispose() {
      services.hub.stop();
      await db.dispose();
    },
  };
}

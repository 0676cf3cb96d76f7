import { randomBytes } from "node:crypto";
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
 * The default configuration with a trusted-keys file of this database's own: each fresh database has
 * its own provenance key, which a shared DATA_DIR file (pinned by whichever test ran first) would not pin.
 */
export function testConfig(env: Record<string, string> = {}) {
  const keys = path.join(tmpdir(), `agency-test-keys-${process.pid}-${randomBytes(6).toString("hex")}`);
  return loadConfig({ PROVENANCE_TRUSTED_KEYS_FILE: keys, ...env });
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

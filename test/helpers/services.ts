import pino from "pino";
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

export async function harness(kind: "pglite" | "postgres"): Promise<Harness> {
  const db = await freshDatabase(kind);
  const services = await createServices(db, silentLog);
  return {
    db,
    services,
    async dispose() {
      services.hub.stop();
      await db.dispose();
    },
  };
}

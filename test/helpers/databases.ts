import { randomBytes } from "node:crypto";
import { type Database, openDatabase } from "../../src/server/db/database.js";
import { migrate } from "../../src/server/db/migrate.js";

export interface TestDatabaseKind {
  name: "pglite" | "postgres";
  open(): Promise<TestDatabase>;
}

export interface TestDatabase extends Database {
  /** Closes the database and, on a server, drops the schema it made. */
  dispose(): Promise<void>;
}

export const POSTGRES_URL = process.env.TEST_DATABASE_URL || undefined;

/** A fresh, empty database: in-memory PGlite, or a new schema on the Postgres server. */
export async function freshDatabase(
  kind: "pglite" | "postgres",
  opts: { migrate?: boolean } = {},
): Promise<TestDatabase> {
  const schema = `t_${process.pid}_${randomBytes(4).toString("hex")}`;
  const db = kind === "postgres" ? await openDatabase({ url: POSTGRES_URL, schema }) : await openDatabase({});
  if (opts.migrate !== false) await migrate(db);
  return Object.assign(db, {
    async dispose() {
      if (kind === "postgres") await db.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await db.close();
    },
  });
}

/** PGlite always; the Postgres server too when TEST_DATABASE_URL is set (CI sets it). */
export const DATABASES: TestDatabaseKind["name"][] = POSTGRES_URL ? ["pglite", "postgres"] : ["pglite"];

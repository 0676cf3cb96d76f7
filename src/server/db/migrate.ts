import { createHash, randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Database, SqlRunner } from "./database.js";

export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../prisma/migrations");

export interface Migration {
  name: string;
  sql: string;
  checksum: string;
}

export function readMigrations(dir = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort()
    .map((name) => {
      const sql = readFileSync(path.join(dir, name, "migration.sql"), "utf8");
      return { name, sql, checksum: createHash("sha256").update(sql).digest("hex") };
    });
}

// The same bookkeeping table as `prisma migrate deploy`, so `prisma migrate status` agrees with us.
const BOOKKEEPING = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
  "id" VARCHAR(36) PRIMARY KEY NOT NULL,
  "checksum" VARCHAR(64) NOT NULL,
  "finished_at" TIMESTAMPTZ,
  "migration_name" VARCHAR(255) NOT NULL,
  "logs" TEXT,
  "rolled_back_at" TIMESTAMPTZ,
  "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
  "applied_steps_count" INTEGER NOT NULL DEFAULT 0
)`;

/** Any number of processes may start at once against one server: they take turns on this lock. */
const MIGRATION_LOCK_KEY = 72_707_369;

interface AppliedRow {
  migration_name: string;
  checksum: string;
  finished_at: Date | null;
}

export interface MigrationStatus {
  applied: string[];
  pending: string[];
  problems: string[];
}

export async function migrationStatus(db: SqlRunner, migrations = readMigrations()): Promise<MigrationStatus> {
  const exists = await db.query<{ t: string | null }>(`SELECT to_regclass('"_prisma_migrations"')::text AS t`);
  const rows = exists[0]?.t
    ? await db.query<AppliedRow>(
        `SELECT migration_name, checksum, finished_at FROM "_prisma_migrations" WHERE rolled_back_at IS NULL`,
      )
    : [];
  const byName = new Map(rows.map((r) => [r.migration_name, r]));
  const problems: string[] = [];
  const applied: string[] = [];
  const pending: string[] = [];
  for (const m of migrations) {
    const row = byName.get(m.name);
    if (!row) pending.push(m.name);
    else if (!row.finished_at) problems.push(`migration ${m.name} started but did not finish`);
    else if (row.checksum !== m.checksum) problems.push(`migration ${m.name} was changed after it was applied`);
    else applied.push(m.name);
  }
  const known = new Set(migrations.map((m) => m.name));
  for (const r of rows)
    if (!known.has(r.migration_name)) problems.push(`database has unknown migration ${r.migration_name}`);
  return { applied, pending, problems };
}

/** Applies pending migrations, each in its own transaction. Returns the names applied. */
export function migrate(database: Database, migrations = readMigrations()): Promise<string[]> {
  return database.session((db) => migrateOn(db, migrations));
}

async function migrateOn(db: SqlRunner, migrations: Migration[]): Promise<string[]> {
  const done: string[] = [];
  await db.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK_KEY]);
  try {
    // A role that does not own the schema (how the server should run: it cannot then switch off the
    // append-only triggers) may not run CREATE TABLE even with IF NOT EXISTS: only create it when missing.
    const [bookkeeping] = await db.query<{ t: string | null }>(`SELECT to_regclass('"_prisma_migrations"')::text AS t`);
    if (!bookkeeping?.t) await db.exec(BOOKKEEPING);
    const status = await migrationStatus(db, migrations);
    if (status.problems.length) throw new Error(`Cannot migrate: ${status.problems.join("; ")}`);
    for (const m of migrations.filter((x) => status.pending.includes(x.name))) {
      const id = randomUUID();
      const escaped = m.name.replace(/'/g, "''");
      await db
        .exec(
          `BEGIN;
${m.sql}
;
INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at, finished_at, applied_steps_count)
VALUES ('${id}', '${m.checksum}', '${escaped}', now(), now(), 1);
COMMIT;`,
        )
        .catch(async (err: unknown) => {
          await db.exec("ROLLBACK").catch(() => undefined);
          throw new Error(`Migration ${m.name} failed: ${(err as Error).message}`);
        });
      done.push(m.name);
    }
  } finally {
    await db.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK_KEY]);
  }
  return done;
}

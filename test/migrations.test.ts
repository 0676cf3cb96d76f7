import { afterAll, describe, expect, it } from "vitest";
import type { Database } from "../src/server/db/database.js";
import { migrate, migrationStatus, readMigrations } from "../src/server/db/migrate.js";
import { freshDatabase, POSTGRES_URL, type TestDatabase } from "./helpers/databases.js";

/** A normalised description of the current schema: tables, columns, indexes, constraints, enums. */
async function describeSchema(db: Database) {
  const columns = await db.query<Record<string, string>>(
    `SELECT table_name, column_name, data_type, udt_name, is_nullable, column_default, character_maximum_length::text AS len,
            is_generated, generation_expression
       FROM information_schema.columns WHERE table_schema = current_schema()
      ORDER BY table_name, column_name`,
  );
  const indexes = await db.query<Record<string, string>>(
    `SELECT tablename, indexname, regexp_replace(indexdef, ' ON [^ ]+\\.', ' ON ') AS def
       FROM pg_indexes WHERE schemaname = current_schema() ORDER BY indexname`,
  );
  // NOT NULL is compared through the columns: newer Postgres (PGlite) also lists it as a constraint.
  const constraints = await db.query<Record<string, string>>(
    `SELECT conrelid::regclass::text AS tbl, conname, contype::text, pg_get_constraintdef(oid) AS def
       FROM pg_constraint WHERE connamespace = current_schema()::regnamespace AND contype <> 'n'
      ORDER BY conname`,
  );
  const enums = await db.query<Record<string, string>>(
    `SELECT t.typname, string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) AS labels
       FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
      WHERE t.typnamespace = current_schema()::regnamespace GROUP BY t.typname ORDER BY t.typname`,
  );
  // Sequence defaults name the schema on a server (nextval('schema.seq')): compare without it.
  const unqualify = (v: string | null) => v?.replace(/nextval\('[^.']+\./, "nextval('") ?? null;
  return {
    columns: columns.map((c) => ({ ...c, column_default: unqualify(c.column_default ?? null) })),
    indexes: indexes.map((i) => ({ ...i, def: i.def?.replace(/ ON \S+ USING/, " ON t USING") })),
    constraints,
    enums,
  };
}

describe("migrations", () => {
  const opened: TestDatabase[] = [];
  afterAll(async () => {
    for (const db of opened) await db.dispose();
  });

  it("apply on a fresh PGlite, are recorded like prisma migrate deploy, and a second run applies nothing", async () => {
    const db = await freshDatabase("pglite", { migrate: false });
    opened.push(db);
    const names = readMigrations().map((m) => m.name);
    expect(await migrationStatus(db)).toEqual({ applied: [], pending: names, problems: [] });
    expect(await migrate(db)).toEqual(names);
    expect(await migrate(db)).toEqual([]);
    const rows = await db.query<{ migration_name: string; checksum: string; finished_at: Date | null }>(
      `SELECT migration_name, checksum, finished_at FROM "_prisma_migrations" ORDER BY migration_name`,
    );
    expect(rows.map((r) => r.migration_name)).toEqual(names);
    expect(rows.every((r) => r.checksum.length === 64 && r.finished_at)).toBe(true);
  });

  it("refuses to run over a migration that was edited after it was applied", async () => {
    const db = await freshDatabase("pglite");
    opened.push(db);
    const edited = readMigrations().map((m, i) => (i === 0 ? { ...m, checksum: "0".repeat(64) } : m));
    await expect(migrate(db, edited)).rejects.toThrow("was changed after it was applied");
    expect((await migrationStatus(db, edited)).problems[0]).toContain("was changed after it was applied");
  });

  it("rolls a failing migration back whole and reports it", async () => {
    const db = await freshDatabase("pglite");
    opened.push(db);
    const bad = [
      ...readMigrations(),
      { name: "99999999999999_bad", sql: "CREATE TABLE half_done (id int); SELECT no_such_function();", checksum: "x" },
    ];
    await expect(migrate(db, bad)).rejects.toThrow("Migration 99999999999999_bad failed");
    const exists = await db.query<{ t: string | null }>(`SELECT to_regclass('half_done')::text AS t`);
    expect(exists[0]?.t).toBeNull();
    expect((await migrationStatus(db, bad)).pending).toEqual(["99999999999999_bad"]);
  });

  it.skipIf(!POSTGRES_URL)("produce the same schema on PGlite and on the Postgres server", async () => {
    const lite = await freshDatabase("pglite");
    const server = await freshDatabase("postgres");
    opened.push(lite, server);
    const a = await describeSchema(lite);
    const b = await describeSchema(server);
    expect(a.columns.length).toBeGreaterThan(20);
    expect(a.indexes.length).toBeGreaterThan(8);
    expect(b).toEqual(a);
  });

  it.skipIf(!POSTGRES_URL)("let several processes start at once against one server", async () => {
    const schemaDbs = await Promise.all([freshDatabase("postgres", { migrate: false })]);
    const db = schemaDbs[0] as TestDatabase;
    opened.push(db);
    const results = await Promise.all([migrate(db), migrate(db), migrate(db)]);
    expect(results.flat().sort()).toEqual(readMigrations().map((m) => m.name));
  });
});

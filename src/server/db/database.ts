import { mkdirSync } from "node:fs";
import path from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { pg_trgm } from "@electric-sql/pglite/contrib/pg_trgm";
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { PrismaPGlite } from "pglite-prisma-adapter";
import { type ListenHandlers, PgListener } from "../lib/pg-listener.js";
import { DbAvailability } from "./availability.js";
import { PrismaClient } from "./generated/client.js";

export type DatabaseKind = "pglite" | "postgres";

/** Raw SQL on the driver, for what Prisma cannot do (multi-statement migrations, session locks). */
export interface SqlRunner {
  /** Runs one or more SQL statements without parameters. */
  exec(sql: string): Promise<void>;
  /** Runs one statement and returns its rows. */
  query<T>(sql: string, params?: unknown[]): Promise<T[]>;
}

/**
 * The one transaction type: raw SQL on the transaction's connection. A Prisma transaction client is
 * one too (the auth and worker services use theirs for the ORM's reads).
 */
export interface Tx {
  $executeRawUnsafe(query: string, ...values: unknown[]): Promise<unknown>;
  $queryRawUnsafe<T = unknown>(query: string, ...values: unknown[]): Promise<T>;
}

/** A driver transaction's connection as a `Tx`. */
export function txOf(conn: SqlRunner): Tx {
  return {
    $executeRawUnsafe: (query, ...values) => conn.query(query, values),
    $queryRawUnsafe: <R>(query: string, ...values: unknown[]) => conn.query(query, values) as Promise<R>,
  };
}

export interface Database extends SqlRunner {
  kind: DatabaseKind;
  /** The schema the tables live in ("public" on PGlite). */
  schema: string;
  prisma: PrismaClient;
  /** Whether the database is reachable, as this process's calls found it (always on PGlite). */
  availability: DbAvailability;
  /** Runs `fn` on one connection, for session-scoped state such as advisory locks. */
  session<T>(fn: (conn: SqlRunner) => Promise<T>): Promise<T>;
  /**
   * Runs `fn` in a transaction on the driver, without the ORM (committed when `fn` resolves, rolled
   * back when it throws): for hot paths whose statements are raw SQL anyway.
   */
  transaction<T>(fn: (tx: SqlRunner) => Promise<T>): Promise<T>;
  /**
   * LISTENs on `channel` (on a Postgres server over one dedicated connection per process, which
   * reconnects by itself and calls `onConnect` each time). Resolves to a function that stops listening.
   */
  listen(channel: string, handlers: ListenHandlers): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** postgres://… for a server; absent for the embedded PGlite. */
  url?: string;
  /** Schema on a Postgres server. */
  schema?: string;
  /** PGlite data directory; absent means in memory. */
  dataDir?: string;
  /** Fed by every call on the driver and by the LISTEN connection; a new one when absent. */
  availability?: DbAvailability;
}

export async function openDatabase(opts: DatabaseOptions): Promise<Database> {
  const availability = opts.availability ?? new DbAvailability();
  return opts.url
    ? openPostgres(opts.url, opts.schema ?? "public", availability)
    : openPglite(availability, opts.dataDir);
}

async function openPglite(availability: DbAvailability, dataDir?: string): Promise<Database> {
  let dir: string | undefined;
  if (dataDir) {
    dir = path.join(dataDir, "pglite");
    mkdirSync(dir, { recursive: true });
  }
  const client = await PGlite.create(dir, { extensions: { pg_trgm } });
  const prisma = new PrismaClient({ adapter: new PrismaPGlite(client) });
  const runner: SqlRunner = {
    async exec(sql) {
      await client.exec(sql);
    },
    async query<T>(sql: string, params: unknown[] = []) {
      return (await client.query<T>(sql, params)).rows;
    },
  };
  return {
    kind: "pglite",
    schema: "public",
    prisma,
    availability,
    ...runner,
    // PGlite has a single connection.
    session: (fn) => fn(runner),
    // PGlite's own transaction holds its connection until the end, as the ORM's adapter does.
    transaction: (fn) =>
      client.transaction((tx) =>
        fn({
          async exec(sql) {
            await tx.exec(sql);
          },
          async query<T>(sql: string, params: unknown[] = []) {
            return (await tx.query<T>(sql, params)).rows;
          },
        }),
      ),
    async listen(channel, handlers) {
      const unlisten = await client.listen(channel, (payload) => handlers.onNotify(payload));
      handlers.onConnect?.();
      return async () => {
        if (!client.closed) await unlisten();
      };
    },
    async close() {
      await prisma.$disconnect();
      await client.close();
    },
  };
}

/** Runs a call on the driver and tells `availability` how it went (a statement's own error is a success of the connection). */
async function observed<T>(availability: DbAvailability, call: () => Promise<T>): Promise<T> {
  const startedAt = Date.now();
  try {
    const out = await call();
    availability.succeeded();
    return out;
  } catch (err) {
    if (!availability.failed(err, startedAt)) availability.succeeded();
    throw err;
  }
}

async function openPostgres(url: string, schema: string, availability: DbAvailability): Promise<Database> {
  const quoted = `"${schema}"`;
  const pool = new pg.Pool({
    connectionString: url,
    max: 10,
    options: `-c search_path=${quoted},public`,
  });
  pool.on("error", () => {
    // An idle client lost its connection; the pool replaces it on the next checkout.
  });
  // Only when missing: a role without CREATE on the database (a server role that owns nothing) may not
  // run CREATE SCHEMA even with IF NOT EXISTS.
  const { rows: found } = await pool.query(`SELECT 1 FROM pg_namespace WHERE nspname = $1`, [schema]);
  if (!found.length) await pool.query(`CREATE SCHEMA IF NOT EXISTS ${quoted}`);
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool, { schema }) });
  const listener = new PgListener({
    connectionString: url,
    applicationName: `agency listen ${schema}`.slice(0, 63),
    // Through the same up/down state as every other call: an outage is one line, not one warning per reconnect.
    onError: (err, retryInMs) => {
      if (!availability.failed(err, Date.now(), "listen")) {
        availability.warn(
          { retryInMs, error: err instanceof Error ? err.message : String(err) },
          "the LISTEN connection to Postgres failed; retrying. Live events from other processes arrive by polling meanwhile",
        );
      }
    },
    onConnected: () => availability.succeeded(),
  });
  const session = async <T>(fn: (conn: SqlRunner) => Promise<T>): Promise<T> => {
    const conn = await observed(availability, () => pool.connect());
    try {
      return await fn({
        async exec(sql) {
          await observed(availability, () => conn.query(sql));
        },
        async query<R>(sql: string, params: unknown[] = []) {
          return (await observed(availability, () => conn.query(sql, params))).rows as R[];
        },
      });
    } finally {
      conn.release();
    }
  };
  return {
    kind: "postgres",
    schema,
    prisma,
    availability,
    async exec(sql) {
      await observed(availability, () => pool.query(sql));
    },
    async query<T>(sql: string, params: unknown[] = []) {
      return (await observed(availability, () => pool.query(sql, params))).rows as T[];
    },
    session,
    transaction: (fn) =>
      session(async (conn) => {
        await conn.exec("BEGIN");
        try {
          const out = await fn(conn);
          await conn.exec("COMMIT");
          return out;
        } catch (err) {
          await conn.exec("ROLLBACK").catch(() => undefined);
          throw err;
        }
      }),
    listen: (channel, handlers) => listener.listen(channel, handlers),
    async close() {
      await listener.close();
      await prisma.$disconnect();
      await pool.end();
    },
  };
}

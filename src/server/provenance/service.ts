import { createPublicKey, type KeyObject } from "node:crypto";
import type { Database } from "../db/database.js";
import type { Prisma, ProvenanceRecord } from "../db/generated/client.js";
import { publicKeyId, type SigningKey } from "../keystore/secrets.js";
import { canonicalJson, sha256Hex } from "./canonical.js";
import {
  type ChainRecord,
  type ChainReport,
  GENESIS_HASH,
  recordHash,
  signHashAsync,
  toExportLine,
  verifyChain,
} from "./chain.js";

type Tx = Prisma.TransactionClient;

/**
 * The raw-SQL part of a transaction: what the hot path (claims, attempt ends) uses. A Prisma
 * transaction client is one; on a Postgres server `rawTransaction` runs one on a pool connection
 * directly, without the ORM's per-statement work on large JSON parameters.
 */
export interface SqlTx {
  $executeRawUnsafe(query: string, ...values: unknown[]): Promise<unknown>;
  $queryRawUnsafe<T = unknown>(query: string, ...values: unknown[]): Promise<T>;
}

/** One lock for the chain: whoever holds it reads the head and appends, so two appends never share a parent. */
const PROVENANCE_LOCK_KEY = 72_707_371;
const PAGE = 500;

/** Decisions that go on the chain. */
export const PROVENANCE_KINDS = [
  "task.created",
  "task.dispatched",
  "task.result",
  "task.verdict",
  "task.override",
  "task.cancel",
  "task.retry",
] as const;

export interface NewProvenanceRecord {
  kind: string;
  taskId?: string | null;
  payload: unknown;
}

const toChain = (r: ProvenanceRecord): ChainRecord => ({ ...r, payload: r.payload as unknown });

export function toProvenanceDto(r: ProvenanceRecord) {
  return {
    seq: r.seq.toString(),
    kind: r.kind,
    taskId: r.taskId,
    payload: r.payload as unknown,
    payloadDigest: r.payloadDigest,
    prevHash: r.prevHash,
    hash: r.hash,
    keyId: r.keyId,
    createdAt: r.createdAt,
  };
}
export type ProvenanceDto = ReturnType<typeof toProvenanceDto>;

/** Sealed records as the one JSON parameter `provenanceInsertSql` reads. */
export function provenanceRowsJson(records: ChainRecord[]): string {
  return JSON.stringify(
    records.map((r) => ({
      seq: r.seq.toString(),
      kind: r.kind,
      task_id: r.taskId,
      payload: r.payload,
      payload_digest: r.payloadDigest,
      prev_hash: r.prevHash,
      hash: r.hash,
      signature: r.signature,
      key_id: r.keyId,
      created_at: r.createdAt.toISOString(),
    })),
  );
}

/**
 * One INSERT for sealed records passed as a JSON array in `param`; usable as a CTE of a larger
 * statement. It takes the chain lock (until commit) before inserting, so an appender that read the
 * head under that lock (after a collision) is not overtaken again by one that links to the head it
 * knew: that one waits, collides, and runs again in turn, rather than the first starving.
 */
export function provenanceInsertSql(param: string): string {
  return `INSERT INTO provenance_records (seq, kind, task_id, payload, payload_digest, prev_hash, hash, signature,
            key_id, created_at)
     SELECT x.seq, x.kind, x.task_id, x.payload, x.payload_digest, x.prev_hash, x.hash, x.signature, x.key_id,
            x.created_at
       FROM (SELECT pg_advisory_xact_lock(${PROVENANCE_LOCK_KEY}::bigint)) AS chain_lock,
            jsonb_to_recordset(${param}::jsonb) AS x(seq bigint, kind text, task_id text, payload jsonb,
            payload_digest text, prev_hash text, hash text, signature text, key_id text, created_at timestamptz)
     RETURNING seq`;
}

interface ChainHead {
  seq: bigint;
  hash: string;
}

/** A transaction run by `ProvenanceService.transaction`: the head its appends reached, and its turn. */
interface ChainedTx {
  nextHead: ChainHead | null;
  /** Resolves, once this transaction's turn has come, to the function that ends it. */
  turn: Promise<() => void> | null;
}

const MAX_CHAIN_RUNS = 5;
/** After another process appended first, how long this process reads the head under the chain lock instead. */
const CONTENDED_MS = 10_000;
const CHAINED_MAX_WAIT_MS = 5_000;
const CHAINED_TIMEOUT_MS = 15_000;

/** Another process appended first: our record's sequence number (or hash) is taken. */
export function isChainConflict(err: unknown): boolean {
  const seen = new Set<unknown>();
  const walk = (e: unknown): boolean => {
    if (!e || typeof e !== "object" || seen.has(e)) return false;
    seen.add(e);
    // PGlite's adapter keeps Postgres's code and message; the pg adapter renames them original*.
    const o = e as {
      code?: unknown;
      originalCode?: unknown;
      message?: unknown;
      originalMessage?: unknown;
      constraint?: unknown;
      cause?: unknown;
      meta?: { driverAdapterError?: unknown };
    };
    const code = o.originalCode ?? o.code;
    const text = `${String(o.originalMessage ?? "")} ${String(o.message ?? "")} ${typeof o.constraint === "string" ? o.constraint : ""}`;
    if (code === "23505" && /provenance_records_(pkey|hash_key)/.test(text)) return true;
    return walk(o.cause) || walk(o.meta?.driverAdapterError);
  };
  return walk(err);
}

export class ProvenanceService {
  readonly publicKeyPem: string;
  readonly keyId: string;
  /** The head this process last committed; null when unknown (read under the chain lock instead). */
  private head: ChainHead | null = null;
  /**
   * Until then another process is appending too: reading the head under the chain lock costs a round
   * trip, but re-running a whole transaction after each collision costs far more.
   */
  private contendedUntil = 0;
  private queue: Promise<void> = Promise.resolve();
  private readonly chained = new WeakMap<SqlTx, ChainedTx>();

  constructor(
    private readonly db: Database,
    private readonly signing: SigningKey,
  ) {
    this.publicKeyPem = signing.publicKeyPem;
    this.keyId = signing.keyId;
  }

  /**
   * Appends inside the caller's transaction, so the record commits with the change it vouches for.
   * The chain lock is held until that commit; append provenance before task events (which must come last).
   */
  async append(tx: Tx, input: NewProvenanceRecord): Promise<ProvenanceDto> {
    return (await this.appendMany(tx, [input]))[0] as ProvenanceDto;
  }

  /** Several records in one INSERT, linked in order; the same lock and rules as `append`. */
  async appendMany(tx: Tx, inputs: NewProvenanceRecord[]): Promise<ProvenanceDto[]> {
    const sealed = await this.seal(tx, inputs);
    if (sealed.length) await tx.$executeRawUnsafe(provenanceInsertSql("$1"), provenanceRowsJson(sealed));
    return sealed.map((r) => toProvenanceDto({ ...r, payload: r.payload as Prisma.JsonValue }));
  }

  /**
   * Runs `fn` in a transaction whose appends link to the head this process last committed, without
   * the chain lock and head read round trips (the hot path: claims and attempt ends).
   *
   * Appenders in this process take turns from their first append until their commit, so they never
   * share a parent. Another process appending meanwhile makes our first record's sequence number
   * collide with its record (the primary key refuses it, so the chain never forks): the transaction
   * is then run again, reading the head under the chain lock (and so do this process's transactions
   * for a while after, since the other process is likely to append again). `fn` must therefore be
   * safe to re-run.
   */
  transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    return this.chainedRuns((ctx) =>
      this.db.prisma.$transaction(
        async (tx) => {
          this.chained.set(tx, ctx);
          return fn(tx);
        },
        // Waiting for this process's other appenders counts against the transaction's time: allow for a queue.
        { maxWait: CHAINED_MAX_WAIT_MS, timeout: CHAINED_TIMEOUT_MS },
      ),
    );
  }

  /**
   * `transaction` for work that is raw SQL only: it runs on the driver (`Database.transaction`),
   * without the ORM's per-statement work on large JSON parameters.
   */
  rawTransaction<T>(fn: (tx: SqlTx) => Promise<T>): Promise<T> {
    return this.chainedRuns((ctx) =>
      this.db.transaction((conn) => {
        const tx: SqlTx = {
          $executeRawUnsafe: (query, ...values) => conn.query(query, values),
          $queryRawUnsafe: <R>(query: string, ...values: unknown[]) => conn.query(query, values) as Promise<R>,
        };
        this.chained.set(tx, ctx);
        return fn(tx);
      }),
    );
  }

  /**
   * Runs one chained transaction (`run` registers its client under `ctx`): on commit this process
   * knows the new head; on a collision with another process's append it runs it again, up to
   * MAX_CHAIN_RUNS times, reading the head under the chain lock for a while.
   */
  private async chainedRuns<T>(run: (ctx: ChainedTx) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const ctx: ChainedTx = { nextHead: null, turn: null };
      try {
        const result = await run(ctx);
        if (ctx.nextHead) this.head = ctx.nextHead;
        return result;
      } catch (err) {
        if (!isChainConflict(err)) throw err;
        this.head = null;
        this.contendedUntil = Date.now() + CONTENDED_MS;
        if (attempt >= MAX_CHAIN_RUNS) throw err;
      } finally {
        // Also when the transaction ended (a timeout) while still waiting for its turn: pass it on once it comes.
        void ctx.turn?.then((release) => release());
      }
    }
  }

  /**
   * Computes each record's link, hash and signature in process, without writing: the caller inserts
   * them (`provenanceInsertSql`) in this transaction, before its task events. Hashing here rather
   * than row by row in SQL is what lets a batch be one INSERT. Outside `transaction`, or when this
   * process does not know the head, it takes the chain lock and reads the head first.
   */
  async seal(tx: SqlTx, inputs: NewProvenanceRecord[]): Promise<ChainRecord[]> {
    if (inputs.length === 0) return [];
    for (const input of inputs) {
      if (!input.kind || input.kind.length > 64) throw new Error("A provenance kind is 1–64 characters.");
    }
    // Normalised through canonical JSON, so what is stored (JSONB) hashes the same when read back. The
    // canonical form of the normalised value is the same text, so its digest is taken from it directly.
    const canonical = inputs.map((i) => canonicalJson(i.payload));
    const ctx = this.chained.get(tx);
    let head: ChainHead;
    if (ctx) {
      ctx.turn ??= this.turn();
      await ctx.turn;
      const known = Date.now() < this.contendedUntil ? null : this.head;
      head = ctx.nextHead ?? known ?? (await this.readHead(tx));
    } else {
      // Someone appends outside `transaction` (a script, a test): what this process knew of the head may be stale.
      this.head = null;
      head = await this.readHead(tx);
    }
    let seq = head.seq;
    let prevHash = head.hash;
    const createdAt = new Date();
    const unsigned = inputs.map((input, i) => {
      seq += 1n;
      const text = canonical[i] as string;
      const base = {
        seq,
        kind: input.kind,
        taskId: input.taskId ?? null,
        payloadDigest: sha256Hex(text),
        prevHash,
        keyId: this.signing.keyId,
        createdAt,
      };
      const hash = recordHash(base);
      prevHash = hash;
      return { ...base, payload: JSON.parse(text) as Prisma.InputJsonValue, hash };
    });
    if (ctx) ctx.nextHead = { seq, hash: prevHash };
    const signatures = await Promise.all(unsigned.map((r) => signHashAsync(r.hash, this.signing.privateKey)));
    return unsigned.map((r, i) => ({ ...r, signature: signatures[i] as string }));
  }

  /** The chain lock, then the head: a separate statement, so its snapshot is taken once the lock is held. */
  private async readHead(tx: SqlTx): Promise<ChainHead> {
    await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${PROVENANCE_LOCK_KEY}::bigint)`);
    const [head] = await tx.$queryRawUnsafe<{ head_seq: string; hash: string }[]>(
      `SELECT seq::text AS head_seq, hash FROM provenance_records ORDER BY seq DESC LIMIT 1`,
    );
    return head ? { seq: BigInt(head.head_seq), hash: head.hash } : { seq: 0n, hash: GENESIS_HASH };
  }

  /** Waits for this process's other appenders to commit; resolves to the function that ends our turn. */
  private turn(): Promise<() => void> {
    let release: () => void = () => {};
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const before = this.queue;
    this.queue = before.then(() => mine);
    return before.then(() => release);
  }

  /** For a decision that has no other write to share a transaction with. */
  appendNow(input: NewProvenanceRecord): Promise<ProvenanceDto> {
    return this.db.prisma.$transaction((tx) => this.append(tx, input));
  }

  private async *records(): AsyncGenerator<ChainRecord> {
    let after = 0n;
    for (;;) {
      const page = await this.db.prisma.provenanceRecord.findMany({
        where: { seq: { gt: after } },
        orderBy: { seq: "asc" },
        take: PAGE,
      });
      for (const r of page) yield toChain(r);
      if (page.length < PAGE) return;
      after = (page[page.length - 1] as ProvenanceRecord).seq;
    }
  }

  /** Checks the whole chain against this keystore's public key (and any extra trusted keys). */
  verify(extraPublicKeys: KeyObject[] = []): Promise<ChainReport> {
    const keys = new Map<string, KeyObject>([[this.signing.keyId, this.signing.publicKey]]);
    for (const k of extraPublicKeys) keys.set(publicKeyId(k), k);
    return verifyChain(this.records(), keys);
  }

  async *exportJsonl(): AsyncGenerator<string> {
    for await (const r of this.records()) yield `${toExportLine(r)}\n`;
  }

  async list(input: { taskId?: string; afterSeq?: string; limit: number }) {
    const rows = await this.db.prisma.provenanceRecord.findMany({
      where: {
        ...(input.taskId ? { taskId: input.taskId } : {}),
        ...(input.afterSeq ? { seq: { lt: BigInt(input.afterSeq) } } : {}),
      },
      orderBy: { seq: "desc" },
      take: input.limit + 1,
    });
    const items = rows.slice(0, input.limit).map(toProvenanceDto);
    return { items, nextCursor: rows.length > input.limit ? (items[items.length - 1]?.seq ?? null) : null };
  }
}

/** Reads a PEM public key (SPKI) for verifying an export. */
export function readPublicKey(pem: string): KeyObject {
  const key = createPublicKey(pem);
  if (key.asymmetricKeyType !== "ed25519") throw new Error("The public key is not an Ed25519 key.");
  return key;
}

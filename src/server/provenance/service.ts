import { createPublicKey, type KeyObject } from "node:crypto";
import { type Database, type Tx, txOf } from "../db/database.js";
import type { Prisma, ProvenanceRecord } from "../db/generated/client.js";
import type { SigningKey } from "../keystore/secrets.js";
import { canonicalJson, sha256Hex } from "./canonical.js";
import { type LogRecord, type LogReport, leafBytes, toExportLine, verifyLog } from "./log.js";
import { Frontier, leafHash } from "./merkle.js";
import { checkpointBody, keyFingerprint, signNote, verifierKey } from "./note.js";
import { databaseRecords } from "./records.js";
import { readTrustedKeysFile } from "./trusted-keys.js";

/** One lock for the log: whoever holds it reads the head and appends, so two appends never share a parent. */
const PROVENANCE_LOCK_KEY = 72_707_371;
const PAGE = 500;

/** Decisions that go on the chain. */
export const PROVENANCE_KINDS = [
  "task.created",
  "task.dispatched",
  "task.result",
  "task.verdict",
  "task.override",
  "task.cancel_requested",
  "task.cancel",
  "task.retry",
  "task.approve",
  "task.reject",
] as const;

export interface NewProvenanceRecord {
  kind: string;
  taskId?: string | null;
  payload: unknown;
}

export function toProvenanceDto(
  r: Pick<ProvenanceRecord, "seq" | "kind" | "taskId" | "payload" | "payloadDigest" | "leafHash" | "createdAt">,
) {
  return {
    seq: r.seq.toString(),
    kind: r.kind,
    taskId: r.taskId,
    payload: r.payload as unknown,
    payloadDigest: r.payloadDigest,
    leafHash: r.leafHash,
    createdAt: r.createdAt,
  };
}
export type ProvenanceDto = ReturnType<typeof toProvenanceDto>;

/** A record ready to insert: its leaf, and on a batch's last record the frontier and the signed checkpoint. */
export interface SealedRecord extends LogRecord {
  leafHash: string;
  frontier: string | null;
  checkpointKeyId: string | null;
}

/** Sealed records as the one JSON parameter `provenanceInsertSql` reads. */
export function provenanceRowsJson(records: SealedRecord[]): string {
  return JSON.stringify(
    records.map((r) => ({
      seq: r.seq.toString(),
      kind: r.kind,
      task_id: r.taskId,
      payload: r.payload,
      payload_digest: r.payloadDigest,
      leaf_hash: r.leafHash,
      frontier: r.frontier,
      checkpoint: r.checkpoint,
      checkpoint_key_id: r.checkpointKeyId,
      created_at: r.createdAt.toISOString(),
    })),
  );
}

/**
 * One INSERT for sealed records passed as a JSON array in `param`; usable as a CTE of a larger
 * statement. It takes the log lock (until commit) before inserting, so an appender that read the
 * head under that lock (after a collision) is not overtaken again by one that links to the head it
 * knew: that one waits, collides, and runs again in turn, rather than the first starving.
 */
export function provenanceInsertSql(param: string): string {
  return `INSERT INTO provenance_records (seq, kind, task_id, payload, payload_digest, leaf_hash, frontier, checkpoint,
            checkpoint_key_id, created_at)
     SELECT x.seq, x.kind, x.task_id, x.payload, x.payload_digest, x.leaf_hash, x.frontier, x.checkpoint,
            x.checkpoint_key_id, x.created_at
       FROM (SELECT pg_advisory_xact_lock(${PROVENANCE_LOCK_KEY}::bigint)) AS chain_lock,
            jsonb_to_recordset(${param}::jsonb) AS x(seq bigint, kind text, task_id text, payload jsonb,
            payload_digest text, leaf_hash text, frontier text, checkpoint text, checkpoint_key_id text,
            created_at timestamptz)
     RETURNING seq`;
}

/** A transaction run by `ProvenanceService.transaction`: the head its appends reached, and its turn. */
interface ChainedTx {
  nextHead: Frontier | null;
  /** The last checkpoint this transaction signed: witnessed once it commits. */
  checkpoint: string | null;
  /** Resolves, once this transaction's turn has come, to the function that ends it. */
  turn: Promise<() => void> | null;
}

const MAX_CHAIN_RUNS = 5;
/** After another process appended first, how long this process reads the head under the log lock instead. */
const CONTENDED_MS = 10_000;

/** Another process appended first: our record's sequence number is taken. */
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
    if (code === "23505" && /provenance_records_pkey/.test(text)) return true;
    return walk(o.cause) || walk(o.meta?.driverAdapterError);
  };
  return walk(err);
}

/** Receives each checkpoint once the transaction that signed it has committed (witness file, webhook). */
export type CheckpointListener = (note: string) => void;

export interface ProvenanceOptions {
  /** The checkpoint origin line, also the signing key's name in the note (C2SP convention). */
  origin: string;
  /** The admin's file of pinned public keys: what `verify` trusts. Never a key read from the database. */
  trustedKeysFile: string;
  onCheckpoint?: CheckpointListener;
}

export class ProvenanceService {
  readonly publicKeyPem: string;
  /** Fingerprint of the signing key (SHA-256 of its DER public key, 32 hex digits). */
  readonly keyId: string;
  readonly origin: string;
  /** The signing key as a note verifier key (`name+hash+base64`), what the admin pins. */
  readonly verifierKey: string;
  readonly trustedKeysFile: string;
  /** Told when `verify` finds the log not intact (webhooks' provenance.verification_failed). */
  onVerifyFailed?: (report: LogReport) => void;
  /** The head this process last committed; null when unknown (read under the log lock instead). */
  private head: Frontier | null = null;
  /**
   * Until then another process is appending too: reading the head under the log lock costs a round
   * trip, but re-running a whole transaction after each collision costs far more.
   */
  private contendedUntil = 0;
  private queue: Promise<void> = Promise.resolve();
  private readonly chained = new WeakMap<Tx, ChainedTx>();
  private readonly listeners: CheckpointListener[] = [];

  constructor(
    private readonly db: Database,
    private readonly signing: SigningKey,
    opts: ProvenanceOptions,
  ) {
    this.publicKeyPem = signing.publicKeyPem;
    this.keyId = keyFingerprint(signing.publicKey);
    this.origin = opts.origin;
    this.verifierKey = verifierKey(opts.origin, signing.publicKey);
    this.trustedKeysFile = opts.trustedKeysFile;
    if (opts.onCheckpoint) this.listeners.push(opts.onCheckpoint);
  }

  onCheckpoint(listener: CheckpointListener): void {
    this.listeners.push(listener);
  }

  private witness(note: string | null): void {
    if (!note) return;
    for (const l of this.listeners) l(note);
  }

  /**
   * Appends inside the caller's transaction (outside a unit of work: scripts, tests), so the record
   * commits with the change it vouches for. The log lock is held until that commit.
   */
  async append(tx: Tx, input: NewProvenanceRecord): Promise<ProvenanceDto> {
    const [sealed] = await this.seal(tx, [input]);
    await tx.$executeRawUnsafe(provenanceInsertSql("$1"), provenanceRowsJson(sealed ? [sealed] : []));
    return toProvenanceDto({ ...(sealed as SealedRecord), payload: sealed?.payload as Prisma.JsonValue });
  }

  /**
   * Runs `fn` in a transaction on the driver (`Database.transaction`) whose appends continue from the
   * head this process last committed, without the log lock and head read round trips.
   *
   * Appenders in this process take turns from their first append until their commit, so they never
   * share a parent. Another process appending meanwhile makes our first record's sequence number
   * collide with its record (the primary key refuses it, so the log never forks): the transaction
   * is then run again, reading the head under the log lock (and so do this process's transactions
   * for a while after, since the other process is likely to append again). `fn` must therefore be
   * safe to re-run.
   */
  transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    return this.chainedRuns((ctx) =>
      this.db.transaction((conn) => {
        const tx = txOf(conn);
        this.chained.set(tx, ctx);
        return fn(tx);
      }),
    );
  }

  /**
   * Runs one chained transaction (`run` registers its client under `ctx`): on commit this process
   * knows the new head and hands the checkpoint to the witnesses; on a collision with another
   * process's append it runs it again, up to MAX_CHAIN_RUNS times, reading the head under the lock.
   */
  private async chainedRuns<T>(run: (ctx: ChainedTx) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const ctx: ChainedTx = { nextHead: null, checkpoint: null, turn: null };
      try {
        const result = await run(ctx);
        if (ctx.nextHead) this.head = ctx.nextHead;
        this.witness(ctx.checkpoint);
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
   * Computes each record's leaf hash, the new frontier and root, and signs one checkpoint for the
   * batch (carried by its last record), without writing: the caller inserts them
   * (`provenanceInsertSql`) in this transaction, before its task events. Signing in the transaction
   * means every committed log state has its checkpoint, with no window and no second statement.
   * Outside `transaction`, or when this process does not know the head, it takes the log lock and
   * reads the head first.
   */
  async seal(tx: Tx, inputs: NewProvenanceRecord[]): Promise<SealedRecord[]> {
    if (inputs.length === 0) return [];
    for (const input of inputs) {
      if (!input.kind || input.kind.length > 64) throw new Error("A provenance kind is 1–64 characters.");
    }
    // Normalised through canonical JSON, so what is stored (JSONB) hashes the same when read back. The
    // canonical form of the normalised value is the same text, so its digest is taken from it directly.
    const canonical = inputs.map((i) => canonicalJson(i.payload));
    const ctx = this.chained.get(tx);
    let head: Frontier;
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
    let seq = head.size;
    const createdAt = new Date();
    const records = inputs.map((input, i) => {
      seq += 1n;
      const text = canonical[i] as string;
      const base = { seq, kind: input.kind, taskId: input.taskId ?? null, payloadDigest: sha256Hex(text), createdAt };
      return { ...base, payload: JSON.parse(text) as Prisma.InputJsonValue, leaf: leafHash(leafBytes(base)) };
    });
    const next = head.append(records.map((r) => r.leaf));
    const checkpoint = this.signCheckpoint(next);
    if (ctx) {
      ctx.nextHead = next;
      ctx.checkpoint = checkpoint;
    }
    const last = records.length - 1;
    return records.map(({ leaf, ...r }, i) => ({
      ...r,
      leafHash: leaf.toString("hex"),
      frontier: i === last ? next.encode() : null,
      checkpoint: i === last ? checkpoint : null,
      checkpointKeyId: i === last ? this.keyId : null,
    }));
  }

  private signCheckpoint(tree: Frontier): string {
    return signNote(
      checkpointBody(this.origin, tree.size, tree.root()),
      this.origin,
      this.signing.privateKey,
      this.signing.publicKey,
    );
  }

  /** The log lock, then the head's frontier: a separate statement, so its snapshot is taken once the lock is held. */
  private async readHead(tx: Tx): Promise<Frontier> {
    await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${PROVENANCE_LOCK_KEY}::bigint)`);
    const [head] = await tx.$queryRawUnsafe<{ head_seq: string; frontier: string | null }[]>(
      `SELECT seq::text AS head_seq, frontier FROM provenance_records ORDER BY seq DESC LIMIT 1`,
    );
    if (!head) return Frontier.empty();
    if (head.frontier === null) {
      throw new Error(
        `Provenance record ${head.head_seq}, the head of the log, has no frontier: the log was written before ` +
          "its Merkle tree was derived (restart the server to derive it) or the head was altered.",
      );
    }
    return Frontier.decode(BigInt(head.head_seq), head.frontier);
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
  async appendNow(input: NewProvenanceRecord): Promise<ProvenanceDto> {
    let note: string | null = null;
    const dto = await this.db.prisma.$transaction(async (tx) => {
      const sealed = await this.seal(tx, [input]);
      await tx.$executeRawUnsafe(provenanceInsertSql("$1"), provenanceRowsJson(sealed));
      note = sealed[sealed.length - 1]?.checkpoint ?? null;
      return toProvenanceDto({ ...(sealed[0] as SealedRecord), payload: sealed[0]?.payload as Prisma.JsonValue });
    });
    this.witness(note);
    return dto;
  }

  /**
   * Derives the Merkle tree of records written before the log had one (the legacy hash chain): their
   * leaf hashes, the head's frontier and a first checkpoint, once, under the log lock. Whichever
   * process starts first does it; the others find it done.
   */
  async init(): Promise<{ upgraded: number }> {
    return this.db.prisma.$transaction(
      async (tx) => {
        await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${PROVENANCE_LOCK_KEY}::bigint)`);
        const [head] = await tx.$queryRawUnsafe<{ seq: string; frontier: string | null; leaf_hash: string | null }[]>(
          `SELECT seq::text AS seq, frontier, leaf_hash FROM provenance_records ORDER BY provenance_records.seq DESC LIMIT 1`,
        );
        // Only a legacy head (no leaf hash yet) is derived: a Merkle-era head without a frontier means the
        // log's tail was cut, which appends then report (readHead) and the verifier names.
        if (!head || head.frontier !== null || head.leaf_hash !== null) return { upgraded: 0 };
        const headSeq = BigInt(head.seq);
        let tree = Frontier.empty();
        let headLeaf = "";
        let upgraded = 0;
        for (let after = 0n; ; ) {
          const page = await tx.provenanceRecord.findMany({
            where: { seq: { gt: after, lte: headSeq } },
            orderBy: { seq: "asc" },
            take: PAGE,
          });
          if (!page.length) break;
          const pending: { seq: string; leaf_hash: string }[] = [];
          for (const r of page) {
            const leaf = leafHash(leafBytes(r));
            tree = tree.append([leaf]);
            // The head gets its leaf hash with its frontier and checkpoint below: the trigger allows one update.
            if (r.seq === headSeq) headLeaf = leaf.toString("hex");
            else if (r.leafHash === null) pending.push({ seq: r.seq.toString(), leaf_hash: leaf.toString("hex") });
          }
          if (pending.length) {
            await tx.$executeRawUnsafe(
              `UPDATE provenance_records p SET leaf_hash = x.leaf_hash
                 FROM jsonb_to_recordset($1::jsonb) AS x(seq bigint, leaf_hash text) WHERE p.seq = x.seq`,
              JSON.stringify(pending),
            );
          }
          upgraded += pending.length;
          after = (page[page.length - 1] as ProvenanceRecord).seq;
        }
        await tx.$executeRawUnsafe(
          `UPDATE provenance_records SET leaf_hash = $2, frontier = $3, checkpoint = $4, checkpoint_key_id = $5
            WHERE seq = $1::bigint`,
          headSeq.toString(),
          headLeaf,
          tree.encode(),
          this.signCheckpoint(tree),
          this.keyId,
        );
        upgraded++;
        return { upgraded };
      },
      { timeout: 10 * 60_000 },
    );
  }

  /** The latest signed checkpoint (the note text), or null while the log is empty. */
  async latestCheckpoint(): Promise<string | null> {
    const [row] = await this.db.query<{ checkpoint: string }>(
      `SELECT checkpoint FROM provenance_records WHERE checkpoint IS NOT NULL ORDER BY seq DESC LIMIT 1`,
    );
    return row?.checkpoint ?? null;
  }

  records(): AsyncGenerator<LogRecord> {
    return databaseRecords(this.db);
  }

  /**
   * Checks the whole log against the keys pinned in the trusted-keys file (never against a key from
   * the database): every record's digests, every stored checkpoint's signature and root.
   */
  async verify(): Promise<LogReport & { pinnedKeys: number; trustedKeysError: string | null }> {
    let pinned: Awaited<ReturnType<typeof readTrustedKeysFile>> = [];
    let trustedKeysError: string | null = null;
    try {
      pinned = await readTrustedKeysFile(this.trustedKeysFile);
    } catch (err) {
      trustedKeysError = (err as Error).message;
    }
    const report = await verifyLog(this.records(), { pinned });
    if (!report.ok) this.onVerifyFailed?.(report);
    return { ...report, pinnedKeys: pinned.length, trustedKeysError };
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

/** Reads a PEM public key (SPKI). */
export function readPublicKey(pem: string): KeyObject {
  const key = createPublicKey(pem);
  if (key.asymmetricKeyType !== "ed25519") throw new Error("The public key is not an Ed25519 key.");
  return key;
}

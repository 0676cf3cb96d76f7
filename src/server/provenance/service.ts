import { createPublicKey, type KeyObject } from "node:crypto";
import type { Database } from "../db/database.js";
import type { Prisma, ProvenanceRecord } from "../db/generated/client.js";
import { publicKeyId, type SigningKey } from "../keystore/secrets.js";
import { canonicalJson } from "./canonical.js";
import {
  type ChainRecord,
  type ChainReport,
  GENESIS_HASH,
  payloadDigest,
  recordHash,
  signHash,
  toExportLine,
  verifyChain,
} from "./chain.js";

type Tx = Prisma.TransactionClient;

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

export class ProvenanceService {
  readonly publicKeyPem: string;
  readonly keyId: string;

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
    if (!input.kind || input.kind.length > 64) throw new Error("A provenance kind is 1–64 characters.");
    // Normalised through canonical JSON, so what is stored (JSONB) hashes the same when read back.
    const payload = JSON.parse(canonicalJson(input.payload)) as Prisma.InputJsonValue;
    await tx.$executeRaw`SELECT pg_advisory_xact_lock(${PROVENANCE_LOCK_KEY}::bigint)`;
    const head = await tx.provenanceRecord.findFirst({ orderBy: { seq: "desc" }, select: { seq: true, hash: true } });
    const base = {
      seq: (head?.seq ?? 0n) + 1n,
      kind: input.kind,
      taskId: input.taskId ?? null,
      payloadDigest: payloadDigest(payload),
      prevHash: head?.hash ?? GENESIS_HASH,
      keyId: this.signing.keyId,
      createdAt: new Date(),
    };
    const hash = recordHash(base);
    const row = await tx.provenanceRecord.create({
      data: { ...base, payload, hash, signature: signHash(hash, this.signing.privateKey) },
    });
    return toProvenanceDto(row);
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

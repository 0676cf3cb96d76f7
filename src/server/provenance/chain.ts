import { type KeyObject, sign, verify } from "node:crypto";
import { z } from "zod";
import { canonicalJson, sha256Hex } from "./canonical.js";

export const GENESIS_HASH = "0".repeat(64);

/** One link of the chain, as stored and as exported (one JSON object per line). */
export interface ChainRecord {
  seq: bigint;
  kind: string;
  taskId: string | null;
  payload: unknown;
  payloadDigest: string;
  prevHash: string;
  hash: string;
  signature: string;
  keyId: string;
  createdAt: Date;
}

export const payloadDigest = (payload: unknown): string => sha256Hex(canonicalJson(payload));

/**
 * SHA-256 over the canonical encoding of every field except the hash and signature themselves:
 * `canonicalJson({ seq, kind, taskId, payloadDigest, prevHash, keyId, createdAt })`, written out
 * with its keys in canonical (sorted) order because it runs for every record of every batch.
 */
export function recordHash(r: Omit<ChainRecord, "hash" | "signature" | "payload">): string {
  const s = JSON.stringify;
  return sha256Hex(
    `{"createdAt":${s(r.createdAt.toISOString())},"keyId":${s(r.keyId)},"kind":${s(r.kind)},` +
      `"payloadDigest":${s(r.payloadDigest)},"prevHash":${s(r.prevHash)},"seq":${s(r.seq.toString())},` +
      `"taskId":${r.taskId === null ? "null" : s(r.taskId)}}`,
  );
}

export const signHash = (hash: string, key: KeyObject): string =>
  sign(null, Buffer.from(hash, "hex"), key).toString("base64");

/** The same signature, computed on libuv's thread pool: a batch's signatures leave the event loop free. */
export const signHashAsync = (hash: string, key: KeyObject): Promise<string> =>
  new Promise((resolve, reject) => {
    sign(null, Buffer.from(hash, "hex"), key, (err, signature) => {
      if (err) reject(err);
      else resolve(signature.toString("base64"));
    });
  });

export type ChainProblem = "missing" | "sequence" | "link" | "payload" | "hash" | "key" | "signature";

export interface ChainReport {
  ok: boolean;
  /** Records that passed every check. */
  checked: number;
  headSeq: string | null;
  headHash: string | null;
  /** The first record that fails, and why; later records are not trusted once one fails. */
  firstBad: { seq: string; problem: ChainProblem; reason: string } | null;
}

/** Checks sequence, links, payload digests, hashes and signatures, streaming, and stops at the first bad record. */
export async function verifyChain(
  records: AsyncIterable<ChainRecord> | Iterable<ChainRecord>,
  trustedKeys: ReadonlyMap<string, KeyObject>,
): Promise<ChainReport> {
  let expected = 1n;
  let prevHash = GENESIS_HASH;
  let checked = 0;
  const fail = (seq: bigint, problem: ChainProblem, reason: string): ChainReport => ({
    ok: false,
    checked,
    headSeq: checked ? (expected - 1n).toString() : null,
    headHash: checked ? prevHash : null,
    firstBad: { seq: seq.toString(), problem, reason },
  });
  for await (const r of records) {
    if (r.seq > expected) {
      return fail(
        expected,
        "missing",
        `Record ${expected} is missing: the chain goes from ${expected - 1n} to ${r.seq}.`,
      );
    }
    if (r.seq < expected) {
      return fail(r.seq, "sequence", `Record ${r.seq} appears again, or out of order, after record ${expected - 1n}.`);
    }
    if (r.prevHash !== prevHash) {
      return fail(
        r.seq,
        "link",
        `Record ${r.seq} names ${short(r.prevHash)} as the previous hash, but ${
          r.seq === 1n
            ? "the first record must name the genesis hash"
            : `record ${r.seq - 1n} hashes to ${short(prevHash)}`
        }.`,
      );
    }
    if (payloadDigest(r.payload) !== r.payloadDigest) {
      return fail(r.seq, "payload", `Record ${r.seq}'s payload does not match its digest: the payload was altered.`);
    }
    if (recordHash(r) !== r.hash) {
      return fail(r.seq, "hash", `Record ${r.seq}'s fields do not match its hash: the record was altered.`);
    }
    const key = trustedKeys.get(r.keyId);
    if (!key) {
      return fail(
        r.seq,
        "key",
        `Record ${r.seq} is signed with key ${r.keyId}, which is not a trusted provenance key.`,
      );
    }
    let valid = false;
    try {
      valid = verify(null, Buffer.from(r.hash, "hex"), key, Buffer.from(r.signature, "base64"));
    } catch {
      valid = false;
    }
    if (!valid) return fail(r.seq, "signature", `Record ${r.seq}'s signature does not verify with key ${r.keyId}.`);
    checked++;
    prevHash = r.hash;
    expected = r.seq + 1n;
  }
  return {
    ok: true,
    checked,
    headSeq: checked ? (expected - 1n).toString() : null,
    headHash: checked ? prevHash : null,
    firstBad: null,
  };
}

const short = (h: string) => `${h.slice(0, 12)}…`;

/** The exported form: everything a verifier needs besides the public key. */
export const exportedRecordSchema = z.object({
  seq: z.string().regex(/^\d+$/),
  kind: z.string(),
  taskId: z.string().nullable(),
  payload: z.unknown(),
  payloadDigest: z.string(),
  prevHash: z.string(),
  hash: z.string(),
  signature: z.string(),
  keyId: z.string(),
  createdAt: z.iso.datetime(),
});

export function toExportLine(r: ChainRecord): string {
  return JSON.stringify({
    seq: r.seq.toString(),
    kind: r.kind,
    taskId: r.taskId,
    payload: r.payload,
    payloadDigest: r.payloadDigest,
    prevHash: r.prevHash,
    hash: r.hash,
    signature: r.signature,
    keyId: r.keyId,
    createdAt: r.createdAt.toISOString(),
  });
}

/** Parses exported lines; a line that is not a record stops verification with its line number. */
export async function* parseExportLines(lines: AsyncIterable<string>): AsyncGenerator<ChainRecord> {
  let n = 0;
  for await (const line of lines) {
    n++;
    if (!line.trim()) continue;
    let parsed: z.output<typeof exportedRecordSchema>;
    try {
      parsed = exportedRecordSchema.parse(JSON.parse(line));
    } catch {
      throw new Error(`Line ${n} of the export is not a provenance record.`);
    }
    yield { ...parsed, seq: BigInt(parsed.seq), createdAt: new Date(parsed.createdAt) };
  }
}

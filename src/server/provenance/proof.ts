import type { Database } from "../db/database.js";
import { notFound } from "../errors.js";
import { leafBytes, payloadDigest, recordLeafHash } from "./log.js";
import { nodeHash } from "./merkle.js";
import { type NoteCheck, type PinnedKey, parseCheckpointBody, parseNote, verifyCheckpointNote } from "./note.js";

/**
 * Inclusion proofs (RFC 6962 section 2.1.1, RFC 9162 section 2.1.3) for a task's provenance records against
 * the log's latest signed checkpoint: what the task page shows and checks in the browser.
 */

/** The largest power of two smaller than n (n > 1). */
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/**
 * RFC 6962's MTH over ranges of one list of leaf hashes, each range's hash kept: the proofs of a task's
 * records share most of their subtrees, so the whole set costs about one pass over the leaves.
 */
class SubtreeHashes {
  private readonly memo = new Map<string, Buffer>();
  constructor(private readonly leaves: readonly Buffer[]) {}

  /** MTH(D[start:end]), end > start. */
  root(start: number, end: number): Buffer {
    if (end - start === 1) return this.leaves[start] as Buffer;
    const key = `${start}:${end}`;
    const hit = this.memo.get(key);
    if (hit) return hit;
    const k = split(end - start);
    const h = nodeHash(this.root(start, start + k), this.root(start + k, end));
    this.memo.set(key, h);
    return h;
  }

  /** PATH(m, D[start:end]) for the leaf at `start + m`, the leaf's sibling first. */
  path(m: number, start: number, end: number): Buffer[] {
    const n = end - start;
    if (n <= 1) return [];
    const k = split(n);
    return m < k
      ? [...this.path(m, start, start + k), this.root(start + k, end)]
      : [...this.path(m - k, start + k, end), this.root(start, start + k)];
  }
}

/** PATH(m, D[n]): the audit path of leaf `m` (0-based) in the tree of `leaves`, leaf's sibling first. */
export function inclusionPath(m: number, leaves: readonly Buffer[]): Buffer[] {
  return new SubtreeHashes(leaves).path(m, 0, leaves.length);
}

/**
 * The root an inclusion proof leads to (RFC 9162 section 2.1.3.2), or null when the proof's length does not
 * fit the index and size. Written from the RFC's algorithm, not from `inclusionPath`, so it checks it.
 */
export function rootFromInclusionProof(
  index: bigint,
  size: bigint,
  leaf: Buffer,
  proof: readonly Buffer[],
): Buffer | null {
  if (index >= size) return null;
  let fn = index;
  let sn = size - 1n;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) return null;
    if ((fn & 1n) === 1n || fn === sn) {
      r = nodeHash(p, r);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n ? r : null;
}

export interface TaskRecordProof {
  seq: string;
  kind: string;
  taskId: string | null;
  createdAt: Date;
  payload: unknown;
  payloadDigest: string;
  /** The exact bytes hashed into the leaf (canonical JSON), so a reader can recompute the leaf hash. */
  leafBytes: string;
  leafHash: string;
  /** 0-based position in the log: seq - 1. */
  leafIndex: string;
  /** Hex hashes, the leaf's sibling first (RFC 6962 PATH). */
  proof: string[];
}

export interface TaskProofs {
  /** The latest signed checkpoint the proofs lead to; null while the log is empty. */
  checkpoint: {
    note: string;
    size: string;
    /** Base64, as in the note. */
    root: string;
    origin: string;
    /** The server's check of the note's signature against the admin's pinned keys. */
    signature: { ok: true; keyFingerprint: string } | { ok: false; reason: string };
  } | null;
  records: TaskRecordProof[];
  /** The server's own check of each proof (same algorithm as the browser's, run here): seq → verified. */
  serverCheck: { allVerified: boolean; failed: string[] };
}

/** More records than this on one task are not proven in one answer (a task has a handful: created, results, verdicts). */
export const TASK_PROOF_LIMIT = 200;

/**
 * The task's records with their inclusion proofs against the latest checkpoint. Reads the leaf hashes of the
 * whole tree once (32 bytes a record, one index-ordered scan), then builds each proof from them.
 */
export async function taskProofs(
  db: Database,
  taskId: string,
  pinned: () => Promise<readonly PinnedKey[]>,
): Promise<TaskProofs> {
  const [task] = await db.query<{ id: string }>("SELECT id FROM tasks WHERE id = $1::uuid", [taskId]);
  if (!task) throw notFound("Task", taskId);
  const [cp] = await db.query<{ seq: string; checkpoint: string }>(
    `SELECT seq::text AS seq, checkpoint FROM provenance_records WHERE checkpoint IS NOT NULL
      ORDER BY provenance_records.seq DESC LIMIT 1`,
  );
  const records = await db.query<{
    seq: string;
    kind: string;
    taskId: string | null;
    payload: unknown;
    payloadDigest: string;
    leafHash: string | null;
    createdAt: Date;
  }>(
    `SELECT seq::text AS seq, kind, task_id AS "taskId", payload, payload_digest AS "payloadDigest",
            leaf_hash AS "leafHash", created_at AS "createdAt"
       FROM provenance_records WHERE task_id = $1 ORDER BY provenance_records.seq LIMIT ${TASK_PROOF_LIMIT}`,
    [taskId],
  );
  if (!cp) return { checkpoint: null, records: [], serverCheck: { allVerified: false, failed: [] } };
  const parsed = parseCheckpointBody(parseNote(cp.checkpoint).body);
  let check: NoteCheck;
  try {
    check = verifyCheckpointNote(cp.checkpoint, await pinned());
  } catch (err) {
    check = { ok: false, problem: "unpinned", reason: (err as Error).message, checkpoint: parsed };
  }
  const size = parsed.size;
  const leafRows = await db.query<{ seq: string; leafHash: string | null }>(
    `SELECT seq::text AS seq, leaf_hash AS "leafHash" FROM provenance_records WHERE seq <= $1::bigint ORDER BY provenance_records.seq`,
    [size.toString()],
  );
  if (BigInt(leafRows.length) !== size) {
    throw new Error(
      `The log holds ${leafRows.length} records up to its checkpoint of size ${size}: records are missing.`,
    );
  }
  const leaves = leafRows.map((r, i) => {
    if (r.seq !== String(i + 1) || !r.leafHash) {
      throw new Error(`Provenance record ${r.seq} is out of sequence or has no leaf hash: run provenance verify.`);
    }
    return Buffer.from(r.leafHash, "hex");
  });
  const tree = new SubtreeHashes(leaves);
  const root = Buffer.from(parsed.root);
  const failed: string[] = [];
  const out: TaskRecordProof[] = [];
  for (const r of records) {
    const index = BigInt(r.seq) - 1n;
    if (index >= size) continue;
    const proof = tree.path(Number(index), 0, leaves.length);
    const leaf = Buffer.from(r.leafHash ?? "", "hex");
    const reached = rootFromInclusionProof(index, size, leaf, proof);
    // The stored leaf must also be the hash of the record as stored: content, digest and leaf agree.
    const own = recordLeafHash({ ...r, seq: BigInt(r.seq) });
    const intact = payloadDigest(r.payload) === r.payloadDigest && own.equals(leaf);
    if (!intact || !reached?.equals(root)) failed.push(r.seq);
    out.push({
      ...r,
      leafBytes: leafBytes({ ...r, seq: BigInt(r.seq) }),
      leafHash: r.leafHash ?? "",
      leafIndex: index.toString(),
      proof: proof.map((p) => p.toString("hex")),
    });
  }
  return {
    checkpoint: {
      note: cp.checkpoint,
      size: size.toString(),
      root: root.toString("base64"),
      origin: parsed.origin,
      signature: check.ok ? { ok: true, keyFingerprint: check.key.fingerprint } : { ok: false, reason: check.reason },
    },
    records: out,
    serverCheck: { allVerified: failed.length === 0 && out.length > 0, failed },
  };
}

import { z } from "zod";
import { canonicalJson, sha256Hex } from "./canonical.js";
import { Frontier, leafHash } from "./merkle.js";
import { type Checkpoint, type PinnedKey, verifyCheckpointNote } from "./note.js";

/** One leaf of the log, as stored and as exported (one JSON object per line). */
export interface LogRecord {
  seq: bigint;
  kind: string;
  taskId: string | null;
  payload: unknown;
  payloadDigest: string;
  /** Hex SHA-256(0x00 || leaf bytes); null on a legacy record not yet upgraded. */
  leafHash: string | null;
  createdAt: Date;
  /** The signed checkpoint of the tree ending at this record (a batch's last record). */
  checkpoint: string | null;
}

export const payloadDigest = (payload: unknown): string => sha256Hex(canonicalJson(payload));

/**
 * The leaf bytes: canonical JSON of `{ createdAt, kind, payloadDigest, seq, taskId }` (keys sorted,
 * seq as a decimal string), written out directly because it runs for every record of every batch.
 */
export function leafBytes(r: Pick<LogRecord, "seq" | "kind" | "taskId" | "payloadDigest" | "createdAt">): string {
  const s = JSON.stringify;
  return (
    `{"createdAt":${s(r.createdAt.toISOString())},"kind":${s(r.kind)},"payloadDigest":${s(r.payloadDigest)},` +
    `"seq":${s(r.seq.toString())},"taskId":${r.taskId === null ? "null" : s(r.taskId)}}`
  );
}

export const recordLeafHash = (r: Parameters<typeof leafBytes>[0]): Buffer => leafHash(leafBytes(r));

export type LogProblem =
  | "missing"
  | "sequence"
  | "payload"
  | "leaf"
  | "checkpoint-format"
  | "checkpoint-unpinned"
  | "checkpoint-signature"
  | "checkpoint-root"
  | "truncated"
  | "rewritten"
  | "no-checkpoint";

export interface Finding {
  problem: LogProblem;
  /** The record concerned, when there is one. */
  seq: string | null;
  reason: string;
}

export interface CheckpointSeen {
  size: string;
  root: string;
  origin: string;
  keyFingerprint: string;
}

export interface LogReport {
  ok: boolean;
  /** Records read whose payload digest and leaf hash match their content, before the first that does not. */
  checked: number;
  /** Size and root (base64) of the tree over the records read. */
  size: string;
  root: string;
  /** Signed checkpoints that verified with a pinned key and match the tree at their size. */
  checkpointsVerified: number;
  /** The latest of them. */
  latestCheckpoint: CheckpointSeen | null;
  /** The first record whose stored digests do not match its content (or that is missing), if any. */
  firstBad: Finding | null;
  /** Everything found, in the order found. */
  findings: Finding[];
}

/** A checkpoint from outside the database (a witness file, a saved copy), with where it came from. */
export interface ExternalCheckpoint {
  note: string;
  source: string;
}

export interface VerifyOptions {
  pinned: readonly PinnedKey[];
  /** Checkpoints from outside: the log must be a consistent extension of each. */
  external?: readonly ExternalCheckpoint[];
}

const short = (b64: string) => `${b64.slice(0, 12)}…`;

/**
 * Streams the records in order and recomputes the tree: every record's payload digest and leaf hash
 * against its content (the first mismatch is named and later records are not trusted), every stored
 * checkpoint against the pinned keys and the recomputed root at its size, and each external checkpoint
 * likewise (a log shorter than one is truncated; a root that differs is rewritten history).
 */
export async function verifyLog(
  records: AsyncIterable<LogRecord> | Iterable<LogRecord>,
  opts: VerifyOptions,
): Promise<LogReport> {
  const findings: Finding[] = [];
  let firstBad: Finding | null = null;
  const note = (f: Finding) => {
    findings.push(f);
    if (!firstBad && f.seq !== null && ["missing", "sequence", "payload", "leaf"].includes(f.problem)) firstBad = f;
  };

  // External checkpoints: verify their signatures first, then order them by size.
  const external: { cp: Checkpoint; source: string; fingerprint: string }[] = [];
  for (const e of opts.external ?? []) {
    const check = verifyCheckpointNote(e.note, opts.pinned);
    if (!check.ok) {
      note({
        problem: check.problem === "format" ? "checkpoint-format" : `checkpoint-${check.problem}`,
        seq: null,
        reason: `The checkpoint in ${e.source}${check.checkpoint ? ` (size ${check.checkpoint.size})` : ""} cannot be used: ${check.reason}`,
      } as Finding);
      continue;
    }
    external.push({ cp: check.checkpoint, source: e.source, fingerprint: check.key.fingerprint });
  }
  external.sort((a, b) => (a.cp.size < b.cp.size ? -1 : a.cp.size > b.cp.size ? 1 : 0));
  let nextExternal = 0;
  let lastMatching: bigint = 0n;

  let frontier = Frontier.empty();
  let checked = 0;
  let stopped = false;
  let verified = 0;
  let latest: CheckpointSeen | null = null;
  /** The first record since the last matching external checkpoint whose stored hashes do not match its content. */
  const compareExternal = (): void => {
    while (
      nextExternal < external.length &&
      (external[nextExternal] as (typeof external)[number]).cp.size <= frontier.size
    ) {
      const e = external[nextExternal++] as (typeof external)[number];
      if (e.cp.size < frontier.size) continue; // only reachable for size 0
      const root = frontier.root();
      if (root.equals(e.cp.root)) {
        lastMatching = e.cp.size;
        verified++;
        latest = {
          size: e.cp.size.toString(),
          root: root.toString("base64"),
          origin: e.cp.origin,
          keyFingerprint: e.fingerprint,
        };
      } else {
        note({
          problem: "rewritten",
          seq: null,
          reason:
            `Rewritten history: the checkpoint in ${e.source} vouches for root ${short(e.cp.root.toString("base64"))} ` +
            `at size ${e.cp.size}, but the log's records give ${short(root.toString("base64"))}. Records ` +
            `${lastMatching + 1n}–${e.cp.size} were changed (the log matches the checkpoints up to size ${lastMatching}).`,
        });
      }
    }
  };
  compareExternal();

  let expected = 1n;
  for await (const r of records) {
    if (stopped) continue;
    if (r.seq > expected) {
      note({
        problem: "missing",
        seq: expected.toString(),
        reason: `Record ${expected} is missing: the log goes from ${expected - 1n} to ${r.seq}.`,
      });
      stopped = true;
      continue;
    }
    if (r.seq < expected) {
      note({
        problem: "sequence",
        seq: r.seq.toString(),
        reason: `Record ${r.seq} appears again, or out of order, after record ${expected - 1n}.`,
      });
      stopped = true;
      continue;
    }
    const digest = payloadDigest(r.payload);
    if (digest !== r.payloadDigest) {
      note({
        problem: "payload",
        seq: r.seq.toString(),
        reason: `Record ${r.seq}'s payload does not match its digest: the payload was altered.`,
      });
      stopped = true;
      continue;
    }
    const leaf = recordLeafHash(r);
    if (r.leafHash !== leaf.toString("hex")) {
      note({
        problem: "leaf",
        seq: r.seq.toString(),
        reason:
          r.leafHash === null
            ? `Record ${r.seq} has no leaf hash.`
            : `Record ${r.seq}'s fields do not match its leaf hash: the record was altered.`,
      });
      stopped = true;
      continue;
    }
    frontier = frontier.append([leaf]);
    checked++;
    expected = r.seq + 1n;
    if (r.checkpoint !== null) {
      const check = verifyCheckpointNote(r.checkpoint, opts.pinned);
      if (!check.ok) {
        note({
          problem: check.problem === "format" ? "checkpoint-format" : `checkpoint-${check.problem}`,
          seq: r.seq.toString(),
          reason:
            check.problem === "unpinned"
              ? `Re-signed log: the checkpoint stored with record ${r.seq}: ${check.reason}`
              : `The checkpoint stored with record ${r.seq}: ${check.reason}`,
        } as Finding);
      } else if (check.checkpoint.size !== r.seq || !check.checkpoint.root.equals(frontier.root())) {
        note({
          problem: "checkpoint-root",
          seq: r.seq.toString(),
          reason:
            `The checkpoint stored with record ${r.seq} (signed by ${check.key.fingerprint}) vouches for size ` +
            `${check.checkpoint.size}, root ${short(check.checkpoint.root.toString("base64"))}; the records give ` +
            `size ${r.seq}, root ${short(frontier.root().toString("base64"))}: records up to ${r.seq} were rewritten.`,
        });
      } else {
        verified++;
        latest = {
          size: r.seq.toString(),
          root: check.checkpoint.root.toString("base64"),
          origin: check.checkpoint.origin,
          keyFingerprint: check.key.fingerprint,
        };
      }
    }
    compareExternal();
  }
  if (!stopped && nextExternal < external.length) {
    const longest = external[external.length - 1] as (typeof external)[number];
    note({
      problem: "truncated",
      seq: (frontier.size + 1n).toString(),
      reason:
        `Truncated log: the checkpoint in ${longest.source} vouches for ${longest.cp.size} records, but the log ` +
        `holds ${frontier.size}: records ${frontier.size + 1n}–${longest.cp.size} were removed.`,
    });
  }
  if (!stopped && frontier.size > 0n && verified === 0) {
    note({
      problem: "no-checkpoint",
      seq: null,
      reason: "No checkpoint of this log verifies with the pinned keys: nothing outside the database vouches for it.",
    });
  }
  return {
    ok: findings.length === 0,
    checked,
    size: frontier.size.toString(),
    root: frontier.root().toString("base64"),
    checkpointsVerified: verified,
    latestCheckpoint: latest,
    firstBad,
    findings,
  };
}

/** The exported form: everything a verifier needs besides the pinned keys. */
export const exportedRecordSchema = z.object({
  seq: z.string().regex(/^\d{1,19}$/),
  kind: z.string(),
  taskId: z.string().nullable(),
  payload: z.unknown(),
  payloadDigest: z.string(),
  leafHash: z.string().nullable(),
  createdAt: z.iso.datetime(),
  checkpoint: z.string().nullable().optional(),
});

export function toExportLine(r: LogRecord): string {
  return JSON.stringify({
    seq: r.seq.toString(),
    kind: r.kind,
    taskId: r.taskId,
    payload: r.payload,
    payloadDigest: r.payloadDigest,
    leafHash: r.leafHash,
    createdAt: r.createdAt.toISOString(),
    checkpoint: r.checkpoint,
  });
}

/** Parses exported lines; a line that is not a record stops verification with its line number. */
export async function* parseExportLines(lines: AsyncIterable<string>): AsyncGenerator<LogRecord> {
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
    yield {
      ...parsed,
      seq: BigInt(parsed.seq),
      createdAt: new Date(parsed.createdAt),
      checkpoint: parsed.checkpoint ?? null,
    };
  }
}

import { useEffect, useState } from "react";
import { canonicalJson } from "../../shared/canonical-json.js";
import { ErrorMessage } from "../components/ErrorMessage.js";
import { Time } from "../components/Time.js";
import { type RouterOutputs, trpc } from "../trpc.js";
import "./task-history.css";

type Proofs = RouterOutputs["provenance"]["proof"];
type ProofRecord = Proofs["records"][number];

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const fromHex = (h: string) => Uint8Array.from(h.match(/../g) ?? [], (x) => Number.parseInt(x, 16));
const fromBase64 = (b: string) => Uint8Array.from(atob(b), (c) => c.charCodeAt(0));

async function sha256(...parts: Uint8Array[]): Promise<Uint8Array> {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", all));
}

const utf8 = (s: string) => new TextEncoder().encode(s);
const LEAF = Uint8Array.of(0);
const NODE = Uint8Array.of(1);

/** The leaf bytes, built here from the record's fields (not taken from the server's `leafBytes`). */
function leafBytesOf(r: ProofRecord): string {
  const s = JSON.stringify;
  return (
    `{"createdAt":${s(r.createdAt.toISOString())},"kind":${s(r.kind)},"payloadDigest":${s(r.payloadDigest)},` +
    `"seq":${s(r.seq)},"taskId":${r.taskId === null ? "null" : s(r.taskId)}}`
  );
}

/** RFC 9162 section 2.1.3.2: the root an inclusion proof leads to, or null when it does not fit. */
async function rootFromProof(index: bigint, size: bigint, leaf: Uint8Array, proof: Uint8Array[]) {
  if (index >= size) return null;
  let fn = index;
  let sn = size - 1n;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) return null;
    if ((fn & 1n) === 1n || fn === sn) {
      r = await sha256(NODE, p, r);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = await sha256(NODE, r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n ? r : null;
}

type RecordCheck = { seq: string; ok: true } | { seq: string; ok: false; reason: string };

/**
 * What this browser checks, with nothing but the answer: each payload's digest, each leaf hash from the
 * record's own fields, and each proof up to the root written in the checkpoint note's text.
 */
async function checkInBrowser(p: Proofs): Promise<RecordCheck[]> {
  const cp = p.checkpoint;
  if (!cp) return [];
  const lines = cp.note.split("\n");
  const size = BigInt(lines[1] ?? "0");
  const root = hex(fromBase64(lines[2] ?? ""));
  const out: RecordCheck[] = [];
  for (const r of p.records) {
    const digest = hex(await sha256(utf8(canonicalJson(r.payload))));
    if (digest !== r.payloadDigest) {
      out.push({ seq: r.seq, ok: false, reason: "the payload does not hash to its digest" });
      continue;
    }
    const leaf = await sha256(LEAF, utf8(leafBytesOf(r)));
    if (hex(leaf) !== r.leafHash) {
      out.push({ seq: r.seq, ok: false, reason: "the record's fields do not hash to its leaf" });
      continue;
    }
    const reached = await rootFromProof(BigInt(r.leafIndex), size, leaf, r.proof.map(fromHex));
    out.push(
      reached && hex(reached) === root
        ? { seq: r.seq, ok: true }
        : { seq: r.seq, ok: false, reason: "the proof does not lead to the checkpoint's root" },
    );
  }
  return out;
}

/** The task's provenance records, each proven to be in the log's latest signed checkpoint, checked here. */
export function Provenance({ taskId }: { taskId: string }) {
  const proofs = trpc.provenance.proof.useQuery({ taskId }, { refetchOnWindowFocus: false });
  const [checks, setChecks] = useState<RecordCheck[] | null>(null);
  const [checkError, setCheckError] = useState<string | null>(null);
  useEffect(() => {
    if (!proofs.data) return;
    setChecks(null);
    setCheckError(null);
    if (!globalThis.crypto?.subtle) {
      setCheckError("This browser offers no SHA-256 here (the console is not on a secure origin).");
      return;
    }
    let live = true;
    checkInBrowser(proofs.data)
      .then((c) => live && setChecks(c))
      .catch((err: Error) => live && setCheckError(err.message));
    return () => {
      live = false;
    };
  }, [proofs.data]);

  if (proofs.error) return <ErrorMessage title="Could not load the task's provenance:" error={proofs.error} />;
  if (proofs.isPending) return <p className="loading">Loading provenance…</p>;
  const p = proofs.data;
  if (!p.checkpoint) return <p className="muted">The provenance log is empty: nothing is signed yet.</p>;
  const failed = checks?.filter((c) => !c.ok) ?? [];
  const byseq = new Map(checks?.map((c) => [c.seq, c]) ?? []);
  return (
    <div className="provenance">
      <section aria-labelledby="prov-check-title">
        <h3 id="prov-check-title" className="section-title">
          Checks
        </h3>
        <ul>
          <li data-testid="browser-check">
            {checkError ? (
              <>Not checked in your browser: {checkError}</>
            ) : !checks ? (
              <>Checking in your browser…</>
            ) : failed.length === 0 && checks.length > 0 ? (
              <>
                <strong>Verified in your browser:</strong> all {checks.length} records of this task are in the
                checkpoint's tree (payload digests, leaf hashes and inclusion proofs recomputed here).
              </>
            ) : checks.length === 0 ? (
              <>This task has no records in the checkpoint yet.</>
            ) : (
              <>
                <strong>Not verified in your browser:</strong> {failed.length} of {checks.length} records failed.
              </>
            )}
          </li>
          <li data-testid="server-check">
            The server's check of the same proofs:{" "}
            {p.serverCheck.allVerified ? "all verified" : `failed for ${p.serverCheck.failed.join(", ") || "all"}`}.
          </li>
          <li data-testid="signature-check">
            The checkpoint's signature, checked by the server against the admin's pinned keys:{" "}
            {p.checkpoint.signature.ok
              ? `valid (key ${p.checkpoint.signature.keyFingerprint})`
              : `not verified: ${p.checkpoint.signature.reason}`}
          </li>
        </ul>
      </section>
      <section aria-labelledby="prov-cp-title">
        <h3 id="prov-cp-title" className="section-title">
          Checkpoint: {p.checkpoint.size} records
        </h3>
        <pre className="checkpoint-note">{p.checkpoint.note}</pre>
      </section>
      <section aria-labelledby="prov-rec-title">
        <h3 id="prov-rec-title" className="section-title">
          Records of this task ({p.records.length})
        </h3>
        <div className="table-wrap">
          <table className="task-table" data-testid="provenance-records">
            <thead>
              <tr>
                <th scope="col">Seq</th>
                <th scope="col">Kind</th>
                <th scope="col">Time</th>
                <th scope="col">In the checkpoint</th>
                <th scope="col">Proof</th>
              </tr>
            </thead>
            <tbody>
              {p.records.map((r) => {
                const c = byseq.get(r.seq);
                return (
                  <tr key={r.seq} data-seq={r.seq}>
                    <td>{r.seq}</td>
                    <td>
                      <code>{r.kind}</code>
                    </td>
                    <td>
                      <Time value={r.createdAt} />
                    </td>
                    <td>{!c ? "checking…" : c.ok ? "verified" : `no: ${c.reason}`}</td>
                    <td className="wrap">
                      <details>
                        <summary>
                          {r.proof.length} {r.proof.length === 1 ? "hash" : "hashes"}, leaf {r.leafIndex}
                        </summary>
                        <p className="proof-hashes">leaf {r.leafHash}</p>
                        <ol className="proof-hashes">
                          {r.proof.map((h, i) => (
                            // biome-ignore lint/suspicious/noArrayIndexKey: a proof's hashes are identified by their position.
                            <li key={i}>{h}</li>
                          ))}
                        </ol>
                      </details>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      </section>
    </div>
  );
}

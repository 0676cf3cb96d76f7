import { createHash } from "node:crypto";
import { TRPCClientError } from "@trpc/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nodeHash, referenceRoot } from "../src/server/provenance/merkle.js";
import { rootFromInclusionProof } from "../src/server/provenance/proof.js";
import { canonicalJson } from "../src/shared/canonical-json.js";
import { DATABASES } from "./helpers/databases.js";
import { ADMIN_TOKEN, type EngineApp, startEngineApp, waitFor } from "./helpers/fault-worker.js";
import { allEvents } from "./helpers/task-events.js";
import { type ReferenceWorkerProcess, startReferenceWorkerProcess } from "./helpers/worker.js";

const TOKEN = "reference-secret-token";
const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest();

/**
 * An inclusion proof checked by RFC 6962's recursive definition of PATH (split at the largest power of two
 * below the size), independently of the iterative RFC 9162 algorithm the server and the console use.
 */
function rootByDefinition(m: number, n: number, leaf: Buffer, proof: Buffer[]): Buffer | null {
  if (n === 1) return proof.length === 0 ? leaf : null;
  if (proof.length === 0) return null;
  let k = 1;
  while (k * 2 < n) k *= 2;
  const last = proof[proof.length - 1] as Buffer;
  const rest = proof.slice(0, -1);
  if (m < k) {
    const left = rootByDefinition(m, k, leaf, rest);
    return left && nodeHash(left, last);
  }
  const right = rootByDefinition(m - k, n - k, leaf, rest);
  return right && nodeHash(last, right);
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (err) {
    if (err instanceof TRPCClientError) return (err.data as { code?: string } | undefined)?.code;
    throw err;
  }
  return "resolved";
}

describe.each(DATABASES)("task history: retries, per-attempt logs, log download, provenance proofs on %s", (kind) => {
  let s: EngineApp;
  let worker: ReferenceWorkerProcess;
  let taskId = "";

  beforeAll(async () => {
    worker = await startReferenceWorkerProcess({ env: { WORKER_TOKEN: TOKEN, WORKER_MAX_CONCURRENCY: "4" } });
    s = await startEngineApp(kind, { MAX_AUTO_REDISPATCH: "1" });
    await s.http.workers.register.mutate({
      name: "reference",
      url: worker.url,
      capabilities: ["script"],
      maxConcurrency: 4,
      token: TOKEN,
    });
    // Every attempt writes its own lines, then leaves a placeholder the council sends back.
    const created = await s.http.tasks.create.mutate({
      title: "Leave a placeholder, loudly",
      mode: "feature",
      input: {
        script:
          "echo \"attempt-marker $(date +%s%N)\"; echo 'progress 100% done'; echo 'plain_line'; " +
          "printf 'a\\tb\\n'; printf 'def run():\\n    # TODO: implement\\n    pass\\n' > run.py",
      },
    });
    taskId = created.id;
    await waitFor(
      "two judged attempts",
      () => s.http.tasks.get.query({ id: taskId }),
      (t) => t.state === "changes_requested" && t.attempts.length === 2,
      60_000,
    );
  }, 120_000);
  afterAll(async () => {
    await s?.stop();
    await worker?.stop();
  });

  it("an operator's retry is one attempt, recorded as the operator's, and the automatic budget stays spent", async () => {
    const before = await s.http.tasks.get.query({ id: taskId });
    expect(before.autoRedispatch).toEqual({ used: 1, max: 1 });
    expect(before.attempts.map((a) => a.origin?.kind)).toEqual(["submitted", "automatic"]);
    expect(before.attempts[1]?.origin).toMatchObject({ kind: "automatic", redispatch: 1, of: 1 });

    await s.http.tasks.retry.mutate({ id: taskId });
    // The automatic re-dispatch, were there one, would queue the task in the verdict's own commit:
    // changes_requested with three attempts is where this retry ends.
    const t = await waitFor(
      "the retried attempt's verdict",
      () => s.http.tasks.get.query({ id: taskId }),
      (x) => x.state === "changes_requested" && x.attempts.length === 3,
      60_000,
    );
    expect(t.attempts.map((a) => a.number)).toEqual([1, 2, 3]);
    expect(t.autoRedispatch).toEqual({ used: 1, max: 1 });
    const origin = t.attempts[2]?.origin;
    expect(origin).toMatchObject({ kind: "retry", by: "admin", autoLeft: 0, autoMax: 1 });
    const third = t.attempts[2];
    expect(origin?.at).toBeInstanceOf(Date);
    expect(third && origin ? origin.at.getTime() <= third.startedAt.getTime() : false).toBe(true);

    const events = await allEvents(s.http, taskId, ["state_changed"]);
    // Both are the state machine's "retry" transition: the operator's and the council's automatic one.
    const retry = events.filter((e) => e.data.name === "retry" && e.data.automatic !== true);
    expect(retry).toHaveLength(1);
    expect(retry[0]).toMatchObject({
      actor: "admin",
      toState: "queued",
      data: { retry: { attempt: 3, by: "admin" }, autoRedispatch: { used: 1, max: 1, left: 0 }, critiqueFrom: 2 },
    });
    expect(events.filter((e) => e.toState === "queued" && e.data.automatic === true)).toHaveLength(1);
  }, 90_000);

  it("a retry of a task that does not exist is NOT_FOUND and changes nothing", async () => {
    const missing = "00000000-0000-4000-8000-000000000000";
    expect(await codeOf(s.http.tasks.retry.mutate({ id: missing }))).toBe("NOT_FOUND");
    expect(await codeOf(s.http.tasks.retry.mutate({ id: "nope" }))).toBe("BAD_REQUEST");
  });

  it("tasks.events reads one attempt's lines, pages them, and searches them", async () => {
    const kinds = ["log" as const];
    const per = await Promise.all(
      [1, 2, 3].map((attempt) => s.http.tasks.events.query({ taskId, kinds, attempt, limit: 1000 })),
    );
    for (const [i, page] of per.entries()) {
      expect(page.items.length).toBeGreaterThanOrEqual(4);
      expect(page.items.every((e) => e.data.attempt === i + 1)).toBe(true);
      expect(page.items.filter((e) => String(e.data.line).startsWith("attempt-marker"))).toHaveLength(1);
    }
    const markers = per.map((p) => p.items.find((e) => String(e.data.line).startsWith("attempt-marker"))?.data.line);
    expect(new Set(markers).size).toBe(3);

    // Paging within one attempt: newest two, then the ones before them, no overlap, nothing missed.
    const newest = await s.http.tasks.events.query({ taskId, kinds, attempt: 2, limit: 2 });
    expect(newest.hasMore).toBe(true);
    const older = await s.http.tasks.events.query({
      taskId,
      kinds,
      attempt: 2,
      limit: 1000,
      before: newest.items[0]?.seq as string,
    });
    expect([...older.items, ...newest.items].map((e) => e.seq)).toEqual(per[1]?.items.map((e) => e.seq));

    // Search is a case-insensitive substring; % and _ are literal, not wildcards.
    const pct = await s.http.tasks.events.query({ taskId, kinds, search: "0% DONE", limit: 1000 });
    expect(pct.items.map((e) => e.data.line)).toEqual([
      "progress 100% done",
      "progress 100% done",
      "progress 100% done",
    ]);
    const literal = await s.http.tasks.events.query({ taskId, kinds, search: "%", attempt: 1, limit: 1000 });
    expect(literal.items.map((e) => e.data.line)).toEqual(["progress 100% done"]);
    const underscore = await s.http.tasks.events.query({ taskId, kinds, search: "plain_", limit: 1000 });
    expect(underscore.items).toHaveLength(3);
    const none = await s.http.tasks.events.query({ taskId, kinds, search: "plainXline", limit: 1000 });
    expect(none.items).toHaveLength(0);

    expect(await codeOf(s.http.tasks.events.query({ taskId, attempt: 0 }))).toBe("BAD_REQUEST");
    expect(await codeOf(s.http.tasks.events.query({ taskId, search: "   " }))).toBe("BAD_REQUEST");
    expect(await codeOf(s.http.tasks.events.query({ taskId, search: "x".repeat(201) }))).toBe("BAD_REQUEST");
  });

  it("downloads the whole log as text, for the task or one attempt, to a signed-in viewer only", async () => {
    const url = `${s.url}/download/tasks/${taskId}/log.txt`;
    const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };
    const res = await fetch(url, { headers: auth });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/plain; charset=utf-8");
    expect(res.headers.get("content-disposition")).toBe(`attachment; filename="task-${taskId.slice(0, 8)}.log.txt"`);
    const text = await res.text();
    const lines = text.split("\n").slice(0, -1);
    const logEvents = await allEvents(s.http, taskId, [
      "log",
      "progress",
      "attempt_try_failed",
      "attempt_lost",
      "worker_breaker",
    ]);
    expect(lines).toHaveLength(logEvents.length);
    for (const [i, e] of logEvents.entries()) {
      const [time, attempt, source, body] = (lines[i] as string).split("\t");
      expect(time).toBe(new Date(e.createdAt).toISOString());
      expect(attempt).toBe(`#${e.data.attempt}`);
      if (e.type === "log") {
        expect(source).toBe(e.data.stream);
        expect(body).toBe(String(e.data.line).replace(/\t/g, "\\t"));
      }
    }
    expect(text).toContain("a\\tb");

    const one = await fetch(`${url}?attempt=2`, { headers: auth });
    const oneLines = (await one.text()).split("\n").slice(0, -1);
    expect(oneLines.length).toBeGreaterThan(0);
    expect(oneLines.every((l) => l.split("\t")[1] === "#2")).toBe(true);
    expect(one.headers.get("content-disposition")).toContain("-attempt-2.log.txt");

    expect((await fetch(url)).status).toBe(401);
    expect((await fetch(`${s.url}/download/tasks/not-a-uuid/log.txt`, { headers: auth })).status).toBe(400);
    expect((await fetch(`${url}?attempt=zero`, { headers: auth })).status).toBe(400);
    const missing = await fetch(`${s.url}/download/tasks/00000000-0000-4000-8000-000000000000/log.txt`, {
      headers: auth,
    });
    expect(missing.status).toBe(404);
    expect((await fetch(url, { method: "POST", headers: auth })).status).toBe(405);
  });

  it("provenance.proof: every record of the task is in the signed checkpoint's tree, checked independently", async () => {
    const p = await s.http.provenance.proof.query({ taskId });
    expect(p.checkpoint).not.toBeNull();
    const cp = p.checkpoint as NonNullable<typeof p.checkpoint>;
    // The latest checkpoint: its tree holds every record (past 9 of them, a text order of seq would pick an old one).
    const [head] = await s.db.query<{ max: string }>("SELECT max(seq)::text AS max FROM provenance_records");
    expect(Number(head?.max)).toBeGreaterThan(9);
    expect(cp.size).toBe(head?.max);
    expect(cp.signature.ok).toBe(true);
    expect(p.serverCheck).toEqual({ allVerified: true, failed: [] });
    const kinds = p.records.map((r) => r.kind);
    for (const k of ["task.created", "task.result", "task.verdict", "task.retry"]) expect(kinds).toContain(k);

    // The checkpoint's root is the root of every leaf in the log, computed here from the rows.
    const leaves = (
      await s.db.query<{ leaf_hash: string }>(
        "SELECT leaf_hash FROM provenance_records WHERE seq <= $1::bigint ORDER BY seq",
        [cp.size],
      )
    ).map((r) => Buffer.from(r.leaf_hash, "hex"));
    const root = Buffer.from(cp.root, "base64");
    expect(referenceRoot(leaves).equals(root)).toBe(true);
    expect(cp.note).toContain(`\n${cp.size}\n${cp.root}\n`);

    for (const r of p.records) {
      // The leaf is the hash of the record's own bytes, and the digest is the payload's.
      expect(createHash("sha256").update(canonicalJson(r.payload)).digest("hex")).toBe(r.payloadDigest);
      const leaf = sha256(Buffer.concat([Buffer.from([0]), Buffer.from(r.leafBytes)]));
      expect(leaf.toString("hex")).toBe(r.leafHash);
      expect(JSON.parse(r.leafBytes)).toMatchObject({ seq: r.seq, kind: r.kind, payloadDigest: r.payloadDigest });
      const proof = r.proof.map((h) => Buffer.from(h, "hex"));
      const byDefinition = rootByDefinition(Number(r.leafIndex), Number(cp.size), leaf, proof);
      expect(byDefinition?.equals(root)).toBe(true);
      expect(rootFromInclusionProof(BigInt(r.leafIndex), BigInt(cp.size), leaf, proof)?.equals(root)).toBe(true);
    }
    // A proof altered in any way leads elsewhere.
    const r0 = p.records[0] as (typeof p.records)[number];
    const proof = r0.proof.map((h) => Buffer.from(h, "hex"));
    if (proof.length) {
      const bad = [...proof];
      bad[0] = sha256("not a sibling");
      const leaf = Buffer.from(r0.leafHash, "hex");
      expect(rootFromInclusionProof(BigInt(r0.leafIndex), BigInt(cp.size), leaf, bad)?.equals(root)).toBe(false);
      expect(
        rootFromInclusionProof(BigInt(r0.leafIndex) + 1n, BigInt(cp.size), leaf, proof)?.equals(root) ?? false,
      ).toBe(false);
    }

    expect(await codeOf(s.http.provenance.proof.query({ taskId: "00000000-0000-4000-8000-000000000000" }))).toBe(
      "NOT_FOUND",
    );
    expect(await codeOf(s.http.provenance.proof.query({ taskId: "x" }))).toBe("BAD_REQUEST");
  });
});

import { execFile } from "node:child_process";
import { createHash, createPublicKey, randomBytes, verify } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "../src/server/db/database.js";
import { migrate } from "../src/server/db/migrate.js";
import { loadTrustConfig } from "../src/server/keystore/config.js";
import {
  rotateSigningKey,
  SecretBox,
  SecretStore,
  SIGNING_KEY_SECRET,
  type SigningKey,
  signingKeyFromSeed,
} from "../src/server/keystore/secrets.js";
import { payloadDigest, recordLeafHash, verifyLog } from "../src/server/provenance/log.js";
import { Frontier } from "../src/server/provenance/merkle.js";
import {
  checkpointBody,
  parseTrustedKeys,
  pinKey,
  signNote,
  splitNotes,
  verifyCheckpointNote,
} from "../src/server/provenance/note.js";
import { verifyRows } from "../src/server/provenance/rows.js";
import { createProvenance } from "../src/server/provenance/setup.js";
import { createServices } from "../src/server/services.js";
import { taskSpecSchema } from "../src/shared/task-spec.js";
import { DATABASES, freshDatabase, POSTGRES_URL } from "./helpers/databases.js";
import {
  ADMIN_TOKEN,
  type EngineApp,
  FAST_ENV,
  type FaultWorker,
  startEngineApp,
  startFaultWorker,
  waitFor,
} from "./helpers/fault-worker.js";
import { testConfig } from "./helpers/services.js";

const run = promisify(execFile);
const ORIGIN = "agent-agency/attack-test";
const masterKey = () => Buffer.from(FAST_ENV.AGENCY_MASTER_KEY as string, "base64");

/** The CLI as a real process; resolves with its exit code and output whatever the code. */
async function cli(args: string[], env: Record<string, string> = {}) {
  try {
    const r = await run("npx", ["tsx", "scripts/provenance-verify.ts", ...args], {
      env: { ...process.env, ...env },
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe.each(DATABASES)("provenance anchored outside the database on %s", (kind) => {
  let s: EngineApp;
  let fake: FaultWorker;
  const dir = mkdtempSync(path.join(tmpdir(), "agency-checkpoint-"));
  const keysFile = path.join(dir, "trusted-keys");
  // Meant for another volume; any path outside the database proves the point.
  const witnessFile = path.join(dir, "witness", "checkpoints");
  let taskIds: string[] = [];

  const logSize = async () =>
    Number((await s.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM provenance_records`))[0]?.n);
  const witnessed = () => {
    try {
      return splitNotes(readFileSync(witnessFile, "utf8"));
    } catch {
      return [];
    }
  };
  const sizeOf = (note: string) => Number(note.split("\n")[1]);
  const asOwner = (sql: string) =>
    s.db.exec(
      `ALTER TABLE provenance_records DISABLE TRIGGER provenance_records_no_update_or_delete; ${sql};
       ALTER TABLE provenance_records ENABLE TRIGGER provenance_records_no_update_or_delete`,
    );
  /** The log as an export file, for the CLI (an in-memory PGlite cannot be opened by another process). */
  const exportTo = async (file: string) => {
    const lines: string[] = [];
    for await (const l of s.services.provenance.exportJsonl()) lines.push(l);
    writeFileSync(file, lines.join(""));
    return file;
  };

  beforeAll(async () => {
    fake = await startFaultWorker({ durationMs: 20 });
    s = await startEngineApp(kind, {
      PROVENANCE_ORIGIN: ORIGIN,
      PROVENANCE_TRUSTED_KEYS_FILE: keysFile,
      PROVENANCE_WITNESS_FILE: witnessFile,
    });
    await s.http.workers.register.mutate({ name: "prov", url: fake.url, capabilities: ["prov"], maxConcurrency: 4 });
    const actor = { kind: "user", id: "tester", name: "tester", role: "operator" } as const;
    taskIds = await s.services.tasks.createMany(
      actor,
      Array.from({ length: 4 }, (_, i) =>
        taskSpecSchema.parse({ title: `decided ${i}`, capability: "prov", input: { i } }),
      ),
    );
    taskIds.push((await s.http.tasks.create.mutate({ title: "decided alone", capability: "prov" })).id);
    await waitFor(
      "every task accepted",
      () => Promise.all(taskIds.map((id) => s.http.tasks.get.query({ id }))),
      (ts) => ts.every((t) => t.state === "accepted"),
      60_000,
    );
    const size = await logSize();
    await waitFor(
      "the witness file to hold the latest checkpoint",
      async () => witnessed(),
      (notes) => notes.some((n) => sizeOf(n) === size),
    );
    await s.db.exec(`CREATE TABLE snap_prov AS SELECT * FROM provenance_records;
                     CREATE TABLE snap_secrets AS SELECT * FROM secrets`);
  }, 120_000);
  afterAll(async () => {
    await s?.stop();
    await fake?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const restore = () =>
    asOwner(`DELETE FROM provenance_records; INSERT INTO provenance_records SELECT * FROM snap_prov;
             DELETE FROM secrets; INSERT INTO secrets SELECT * FROM snap_secrets`);

  it("the key is pinned in a file outside the database at first start, and the log verifies with it", async () => {
    const pinned = parseTrustedKeys(readFileSync(keysFile, "utf8"), keysFile);
    expect(pinned.map((k) => k.fingerprint)).toEqual([s.services.provenance.keyId]);
    const report = await s.services.provenance.verify();
    expect(report).toMatchObject({ ok: true, pinnedKeys: 1, size: String(await logSize()) });
    // One per committed batch, far fewer than the records: not one signature per record any more.
    expect(report.checkpointsVerified).toBeGreaterThan(0);
    expect(report.checkpointsVerified).toBeLessThan(report.checked);
  });

  it("the witness file receives every committed checkpoint, appended in order, each signed by the pinned key", async () => {
    const notes = witnessed();
    const pinned = parseTrustedKeys(readFileSync(keysFile, "utf8"), keysFile);
    const sizes = notes.map(sizeOf);
    expect(sizes).toEqual([...sizes].sort((a, b) => a - b));
    expect(sizes.at(-1)).toBe(await logSize());
    const report = await verifyLog(s.services.provenance.records(), {
      pinned,
      external: notes.map((note, i) => ({ note, source: `witness #${i + 1}` })),
    });
    expect(report).toMatchObject({ ok: true });
    expect(report.checkpointsVerified).toBeGreaterThanOrEqual(notes.length);
  });

  it("GET /provenance/checkpoint serves a signed note that an independent implementation verifies", async () => {
    expect((await fetch(`${s.url}/provenance/checkpoint`)).status).toBe(401);
    const res = await fetch(`${s.url}/provenance/checkpoint`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    const note = await res.text();

    // By hand, from the C2SP specs only: body, blank line, "— name base64(keyhash || sig)".
    const split = note.lastIndexOf("\n\n");
    const body = note.slice(0, split + 1);
    const [origin, size, rootB64] = body.split("\n");
    const sigLine = note.slice(split + 2).trimEnd();
    const m = /^\u2014 (\S+) (\S+)$/.exec(sigLine);
    expect(m).not.toBeNull();
    const [, name, blobB64] = m as unknown as [string, string, string];
    const blob = Buffer.from(blobB64, "base64");
    const vkey = readFileSync(keysFile, "utf8")
      .split("\n")
      .find((l) => l && !l.startsWith("#")) as string;
    const [vName, vHash] = vkey.split("+") as [string, string];
    const keyBytes = Buffer.from(vkey.slice(vName.length + vHash.length + 2), "base64");
    expect(keyBytes[0]).toBe(1);
    const raw = keyBytes.subarray(1);
    const keyHash = createHash("sha256")
      .update(Buffer.concat([Buffer.from(`${name}\n`), Buffer.from([1]), raw]))
      .digest()
      .subarray(0, 4);
    expect(name).toBe(ORIGIN);
    expect(origin).toBe(ORIGIN);
    expect(blob.subarray(0, 4).toString("hex")).toBe(vHash);
    expect(keyHash.equals(blob.subarray(0, 4))).toBe(true);
    const publicKey = createPublicKey({
      key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") },
      format: "jwk",
    });
    expect(verify(null, Buffer.from(body), publicKey, blob.subarray(4))).toBe(true);

    // The root by RFC 6962's recursive definition over the stored leaf hashes, computed here.
    const leaves = (
      await s.db.query<{ leaf_hash: string }>(
        `SELECT leaf_hash FROM provenance_records WHERE seq <= $1::bigint ORDER BY seq`,
        [size],
      )
    ).map((r) => Buffer.from(r.leaf_hash, "hex"));
    const mth = (l: Buffer[]): Buffer => {
      if (l.length === 1) return l[0] as Buffer;
      let k = 1;
      while (k * 2 < l.length) k *= 2;
      return createHash("sha256")
        .update(Buffer.from([1]))
        .update(mth(l.slice(0, k)))
        .update(mth(l.slice(k)))
        .digest();
    };
    expect(mth(leaves).toString("base64")).toBe(rootB64);
  });

  /** What someone with the database and the master key can do: a key of their own, sealed where the server's was. */
  async function resignWholeLog(changeVerdictOf: string): Promise<SigningKey> {
    const seed = randomBytes(32);
    const forger = signingKeyFromSeed(seed);
    await new SecretStore(s.db.prisma, new SecretBox(masterKey())).put(SIGNING_KEY_SECRET, seed);
    const rows = await s.db.query<{
      seq: string;
      kind: string;
      task_id: string | null;
      payload: Record<string, unknown>;
      created_at: Date;
      checkpoint: string | null;
    }>(
      `SELECT seq::text AS seq, kind, task_id, payload, created_at, checkpoint FROM provenance_records ORDER BY provenance_records.seq`,
    );
    let tree = Frontier.empty();
    const updates: string[] = [];
    for (const r of rows) {
      const payload =
        r.kind === "task.verdict" && r.task_id === changeVerdictOf ? { ...r.payload, verdict: "reject" } : r.payload;
      const digest = payloadDigest(payload);
      const leaf = recordLeafHash({
        seq: BigInt(r.seq),
        kind: r.kind,
        taskId: r.task_id,
        payloadDigest: digest,
        createdAt: new Date(r.created_at),
      });
      tree = tree.append([leaf]);
      const checkpoint = r.checkpoint
        ? signNote(checkpointBody(ORIGIN, tree.size, tree.root()), ORIGIN, forger.privateKey, forger.publicKey)
        : null;
      updates.push(
        `UPDATE provenance_records SET payload = '${JSON.stringify(payload).replaceAll("'", "''")}'::jsonb,
           payload_digest = '${digest}', leaf_hash = '${leaf.toString("hex")}',
           frontier = ${r.checkpoint ? `'${tree.encode()}'` : "NULL"},
           checkpoint = ${checkpoint ? `'${checkpoint}'` : "NULL"} WHERE seq = ${r.seq}`,
      );
    }
    await asOwner(updates.join(";\n"));
    return forger;
  }

  it("a log re-signed with a new key sealed into secrets, with a verdict changed, is reported with the pinned key", async () => {
    const saved = path.join(dir, "saved-checkpoint");
    writeFileSync(saved, (await s.services.provenance.latestCheckpoint()) as string);
    const victim = taskIds[0] as string;
    const forger = await resignWholeLog(victim);
    try {
      // What the old verifier did: trust the key the database holds. The forged log is self-consistent.
      expect(await verifyLog(s.services.provenance.records(), { pinned: [pinKey(forger.publicKey)] })).toMatchObject({
        ok: true,
      });
      // With the pinned key: every checkpoint is signed by a key nobody pinned.
      const report = await s.services.provenance.verify();
      expect(report.ok).toBe(false);
      expect(report.findings[0]).toMatchObject({ problem: "checkpoint-unpinned" });
      expect(report.findings[0]?.reason).toMatch(/^Re-signed log/);
      expect(report.checkpointsVerified).toBe(0);

      // The CLI, as a real process, with the admin's file and the saved checkpoint: re-signed and rewritten.
      const out = await cli([
        "--file",
        await exportTo(path.join(dir, "forged.jsonl")),
        "--trusted-keys",
        keysFile,
        "--checkpoint",
        saved,
      ]);
      expect(out.code).toBe(1);
      expect(out.stdout).toMatch(/checkpoint-unpinned: Re-signed log/);
      expect(out.stdout).toMatch(/rewritten: Rewritten history: the checkpoint in .*saved-checkpoint vouches for root/);
    } finally {
      await restore();
    }
    expect((await s.services.provenance.verify()).ok).toBe(true);
  });

  it("records deleted from the end verify on their own, but not against a saved checkpoint", async () => {
    const size = await logSize();
    await asOwner(`DELETE FROM provenance_records WHERE seq > ${size - 3}`);
    try {
      // The database alone cannot tell: what is left is a consistent, signed, shorter log.
      expect(await s.services.provenance.verify()).toMatchObject({ ok: true, size: String(size - 3) });
      const out = await cli([
        "--file",
        await exportTo(path.join(dir, "cut.jsonl")),
        "--public-key",
        keysFile,
        "--checkpoint",
        witnessFile,
      ]);
      expect(out.code).toBe(1);
      expect(out.stdout).toContain(
        `Truncated log: the checkpoint in ${witnessFile} (#${witnessed().length}) vouches for ${size} records, but the log holds ${size - 3}: records ${size - 2}–${size} were removed.`,
      );
    } finally {
      await restore();
    }
  });

  it("a record's payload rewritten with its digest and leaf hash is reported with the record, and against the witness", async () => {
    const victim = (
      await s.db.query<{ seq: string }>(
        `SELECT seq::text AS seq FROM provenance_records WHERE kind = 'task.verdict' ORDER BY provenance_records.seq LIMIT 1`,
      )
    )[0]?.seq as string;
    const row = await s.db.prisma.provenanceRecord.findUniqueOrThrow({ where: { seq: BigInt(victim) } });
    const payload = { ...(row.payload as object), verdict: "reject" };
    const digest = payloadDigest(payload);
    const leaf = recordLeafHash({ ...row, payloadDigest: digest }).toString("hex");
    try {
      // Only the payload: the record itself names it.
      await asOwner(
        `UPDATE provenance_records SET payload = '${JSON.stringify(payload)}'::jsonb WHERE seq = ${victim}`,
      );
      expect((await s.services.provenance.verify()).firstBad).toMatchObject({ seq: victim, problem: "payload" });
      // With its hashes recomputed: the first checkpoint over it names where, and so does the witness.
      await asOwner(
        `UPDATE provenance_records SET payload_digest = '${digest}', leaf_hash = '${leaf}' WHERE seq = ${victim}`,
      );
      const report = await s.services.provenance.verify();
      expect(report.ok).toBe(false);
      const first = report.findings[0];
      expect(first?.problem).toBe("checkpoint-root");
      expect(Number(first?.seq)).toBeGreaterThanOrEqual(Number(victim));
      expect(first?.reason).toMatch(/were rewritten/);
      const withWitness = await verifyLog(s.services.provenance.records(), {
        pinned: parseTrustedKeys(readFileSync(keysFile, "utf8"), keysFile),
        external: witnessed().map((note, i) => ({ note, source: `witness #${i + 1}` })),
      });
      const rewritten = withWitness.findings.find((f) => f.problem === "rewritten");
      const range = /Records (\d+)–(\d+) were changed/.exec(rewritten?.reason ?? "");
      expect(range).not.toBeNull();
      expect(Number(range?.[1])).toBeLessThanOrEqual(Number(victim));
      expect(Number(range?.[2])).toBeGreaterThanOrEqual(Number(victim));
    } finally {
      await restore();
    }
  });

  it("TRUNCATE of the audit trail and of the log is refused", async () => {
    await expect(s.db.exec(`TRUNCATE audit_entries`)).rejects.toThrow(/append-only: TRUNCATE refused/);
    await expect(s.db.exec(`TRUNCATE provenance_records`)).rejects.toThrow(/append-only: TRUNCATE refused/);
    expect((await s.services.provenance.verify()).ok).toBe(true);
  });

  it("a rotated signing key: old checkpoints keep verifying with the old key, new ones with the new", async () => {
    const before = s.services.provenance.keyId;
    const store = new SecretStore(s.db.prisma, new SecretBox(masterKey()));
    const { current } = await rotateSigningKey(store);
    const { appendTrustedKey } = await import("../src/server/provenance/trusted-keys.js");
    const { keyFingerprint, verifierKey } = await import("../src/server/provenance/note.js");
    await appendTrustedKey(keysFile, {
      verifierKey: verifierKey(ORIGIN, current.publicKey),
      fingerprint: keyFingerprint(current.publicKey),
    });
    // A process started after the rotation signs with the new key.
    const config = loadTrustConfig({ PROVENANCE_ORIGIN: ORIGIN, PROVENANCE_TRUSTED_KEYS_FILE: keysFile }, dir);
    const { provenance: restarted } = await createProvenance(s.db, store, config, pino({ level: "silent" }));
    expect(restarted.keyId).toBe(keyFingerprint(current.publicKey));
    expect(restarted.keyId).not.toBe(before);
    await restarted.appendNow({ kind: "task.cancel", taskId: "after-rotation", payload: { by: "tester" } });
    const report = await restarted.verify();
    expect(report).toMatchObject({ ok: true, pinnedKeys: 2, latestCheckpoint: { keyFingerprint: restarted.keyId } });
    const stored = await s.db.query<{ k: string }>(
      `SELECT DISTINCT checkpoint_key_id AS k FROM provenance_records WHERE checkpoint IS NOT NULL`,
    );
    expect(stored.map((r) => r.k).sort()).toEqual([before, restarted.keyId].sort());
    // Without the old key pinned, the old checkpoints are reported: rotation did not silently re-sign history.
    const onlyNew = await verifyLog(restarted.records(), { pinned: [pinKey(current.publicKey)] });
    expect(onlyNew.findings[0]?.problem).toBe("checkpoint-unpinned");
  });

  it("rows edited or deleted behind the log's back (tasks, task_events, audit_entries) are named by --rows", async () => {
    expect(await verifyRows(s.db)).toMatchObject({ ok: true, findings: [] });
    const [a, b, c, d] = taskIds as [string, string, string, string];
    await s.db.exec(`UPDATE tasks SET title = 'forged title' WHERE id = '${a}'`);
    const [event] = await s.db.query<{ seq: string }>(
      `SELECT seq::text AS seq FROM task_events WHERE task_id = '${b}' AND to_state = 'accepted'`,
    );
    await s.db.exec(`UPDATE task_events SET data = '{"forged": true}' WHERE seq = ${event?.seq}`);
    await s.db.exec(`DELETE FROM task_events WHERE task_id = '${c}' AND to_state = 'running'`);
    const [entry] = await s.db.query<{ id: string }>(
      `SELECT id::text AS id FROM audit_entries WHERE resource_id = '${d}' AND action = 'task.create'`,
    );
    // The audit trigger refuses the edit; its owner switches it off, as the issue's attacker did.
    await expect(
      s.db.exec(`UPDATE audit_entries SET actor_id = 'someone else' WHERE id = ${entry?.id}`),
    ).rejects.toThrow(/append-only/);
    await s.db.exec(`ALTER TABLE audit_entries DISABLE TRIGGER audit_entries_no_update_or_delete;
                     UPDATE audit_entries SET actor_id = 'someone else' WHERE id = ${entry?.id};
                     ALTER TABLE audit_entries ENABLE TRIGGER audit_entries_no_update_or_delete`);

    const report = await verifyRows(s.db);
    expect(report.ok).toBe(false);
    const named = report.findings.map((f) => [f.table, f.id]);
    expect(named).toContainEqual(["tasks", a]);
    expect(named).toContainEqual(["task_events", event?.seq]);
    expect(named).toContainEqual(["task_events", null]);
    expect(named).toContainEqual(["audit_entries", entry?.id]);
    expect(report.findings.find((f) => f.table === "tasks")?.reason).toMatch(/title no longer matches record \d+/);
    expect(report.findings).toHaveLength(4);

    if (kind === "postgres") {
      // The CLI's --rows pass, as a real process against the same schema.
      const [{ schema }] = (await s.db.query<{ schema: string }>(`SELECT current_schema() AS schema`)) as [
        { schema: string },
      ];
      const out = await cli(["--rows", "--trusted-keys", keysFile], {
        DATABASE_URL: process.env.TEST_DATABASE_URL as string,
        DATABASE_SCHEMA: schema,
      });
      expect(out.code).toBe(1);
      expect(out.stdout).toContain(`tasks ${a}:`);
      expect(out.stdout).toContain(`audit_entries ${entry?.id}:`);
    }
  });

  it("attempts' results and verdicts, artifacts, tasks' state and description, created events, a running task's cancel and a claim's audit entries are bound: --rows names each edit and deletion", async () => {
    // The previous test's edits are still there; this one judges only what it does itself.
    const baseline = (await verifyRows(s.db)).findings;
    const fresh = async () => {
      const report = await verifyRows(s.db);
      return report.findings.filter((f) => !baseline.some((b) => b.table === f.table && b.id === f.id));
    };
    const one = async (sql: string) => {
      const [row] = await s.db.query<{ id: string }>(sql);
      expect(row).toBeDefined();
      return (row as { id: string }).id;
    };
    const attemptOf = (taskId: string) =>
      one(`SELECT id::text AS id FROM attempts WHERE task_id = '${taskId}' ORDER BY number DESC LIMIT 1`);
    const artifactOf = (attemptId: string) =>
      one(`SELECT id::text AS id FROM artifacts WHERE attempt_id = '${attemptId}' LIMIT 1`);
    const asAuditOwner = (sql: string) =>
      s.db.exec(`ALTER TABLE audit_entries DISABLE TRIGGER audit_entries_no_update_or_delete; ${sql};
                 ALTER TABLE audit_entries ENABLE TRIGGER audit_entries_no_update_or_delete`);

    // Changes the product makes after an attempt's end are bound too, so they are not reported: an
    // override rewrites the judgement, a cancel ends a running attempt.
    const [a, b, c, d, e] = taskIds as [string, string, string, string, string];
    await s.http.tasks.override.mutate({ id: e, verdict: "reject", justification: "Checked by hand: wrong output." });
    fake.set({ durationMs: 60_000 });
    const canceled = (await s.http.tasks.create.mutate({ title: "canceled while running", capability: "prov" })).id;
    await waitFor(
      "the task to run",
      () => s.http.tasks.get.query({ id: canceled }),
      (t) => t.state === "running",
    );
    await s.http.tasks.cancel.mutate({ id: canceled, reason: "no longer needed" });
    fake.set({ durationMs: 20 });
    await waitFor(
      "the cancel to end",
      () => s.http.tasks.get.query({ id: canceled }),
      (t) => t.state === "canceled",
    );
    expect(await fresh()).toEqual([]);

    const attemptA = await attemptOf(a);
    await s.db.exec(`UPDATE attempts SET result = result || '{"logs": ["forged"]}' WHERE id = '${attemptA}'`);
    const attemptB = await attemptOf(b);
    await s.db.exec(`UPDATE attempts SET verdict = 'reject' WHERE id = '${attemptB}'`);
    const artifactC = await artifactOf(await attemptOf(c));
    await s.db.exec(`UPDATE artifacts SET content = 'forged content' WHERE id = '${artifactC}'`);
    const artifactD = await artifactOf(await attemptOf(d));
    await s.db.exec(`DELETE FROM artifacts WHERE id = '${artifactD}'`);
    const createdEvent = await one(
      `SELECT seq::text AS id FROM task_events WHERE task_id = '${canceled}' AND type = 'created'`,
    );
    await s.db.exec(`UPDATE task_events SET data = '{"title": "forged"}' WHERE seq = ${createdEvent}`);
    const cancelEntry = await one(
      `SELECT id::text AS id FROM audit_entries WHERE resource_id = '${canceled}' AND action = 'task.cancel'`,
    );
    const claimEntry = await one(
      `SELECT id::text AS id FROM audit_entries WHERE resource_id = '${e}' AND action = 'task.dispatch'`,
    );
    // The override made e rejected; the row says accepted again. The description column repeats the spec's.
    await s.db.exec(`UPDATE tasks SET state = 'accepted' WHERE id = '${e}';
                     UPDATE tasks SET description = 'forged' WHERE id = '${canceled}'`);
    await asAuditOwner(`UPDATE audit_entries SET actor_id = 'someone else' WHERE id = ${cancelEntry};
                        UPDATE audit_entries SET after = after || '{"worker": "elsewhere"}' WHERE id = ${claimEntry}`);

    const found = await fresh();
    const named = found.map((f) => [f.table, f.id]);
    expect(named).toContainEqual(["attempts", attemptA]);
    expect(named).toContainEqual(["attempts", attemptB]);
    expect(named).toContainEqual(["artifacts", artifactC]);
    expect(named).toContainEqual(["artifacts", artifactD]);
    expect(named).toContainEqual(["task_events", createdEvent]);
    expect(named).toContainEqual(["audit_entries", cancelEntry]);
    expect(named).toContainEqual(["audit_entries", claimEntry]);
    expect(named).toContainEqual(["tasks", e]);
    expect(named).toContainEqual(["tasks", canceled]);
    expect(found).toHaveLength(9);
    const reason = (table: string, id: string) => found.find((f) => f.table === table && f.id === id)?.reason;
    expect(reason("attempts", attemptA)).toMatch(/result .* no longer matches record \d+: the row was edited/);
    expect(reason("attempts", attemptB)).toMatch(/verdict no longer matches record \d+/);
    expect(reason("artifacts", artifactC)).toMatch(/no longer matches record \d+: the row was edited/);
    expect(reason("artifacts", artifactD)).toMatch(/is gone from artifacts: the row was deleted/);
    expect(reason("tasks", e)).toMatch(/is accepted, but the last state change, bound by record \d+, made it rejected/);
    expect(reason("tasks", canceled)).toMatch(/description no longer matches record \d+/);

    if (kind === "postgres") {
      const [{ schema }] = (await s.db.query<{ schema: string }>(`SELECT current_schema() AS schema`)) as [
        { schema: string },
      ];
      const out = await cli(["--rows", "--trusted-keys", keysFile], {
        DATABASE_URL: process.env.TEST_DATABASE_URL as string,
        DATABASE_SCHEMA: schema,
      });
      expect(out.code).toBe(1);
      expect(out.stdout).toContain(`attempts ${attemptB}:`);
      expect(out.stdout).toContain(`artifacts ${artifactD}:`);
      expect(out.stdout).toContain(`audit_entries ${claimEntry}:`);
    }
  });
});

describe("witness webhook", () => {
  it("POSTs each committed checkpoint to the witness URL, retrying a failure; a host outside the allowlist is refused at start", async () => {
    const received: string[] = [];
    let failFirst = true;
    const server = http.createServer((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => {
        body += c.toString("utf8");
      });
      req.on("end", () => {
        if (failFirst) {
          failFirst = false;
          res.writeHead(503).end();
          return;
        }
        received.push(body);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/checkpoints`;
    const db = await freshDatabase("pglite");
    const dir = mkdtempSync(path.join(tmpdir(), "agency-webhook-"));
    try {
      const store = new SecretStore(db.prisma, new SecretBox(randomBytes(32)));
      const log = pino({ level: "silent" });
      await expect(
        createProvenance(
          db,
          store,
          {
            ...loadTrustConfig({ PROVENANCE_WITNESS_URL: "http://witness.example/cp" }, dir),
            WORKER_ALLOWED_HOSTS: ["127.0.0.1"],
          },
          log,
        ),
      ).rejects.toThrow(/PROVENANCE_WITNESS_URL: .*"witness\.example" is not in WORKER_ALLOWED_HOSTS/);
      const { provenance, flushWitnesses } = await createProvenance(
        db,
        store,
        {
          ...loadTrustConfig({ PROVENANCE_WITNESS_URL: url, PROVENANCE_ORIGIN: ORIGIN }, dir),
          WORKER_ALLOWED_HOSTS: ["127.0.0.1"],
        },
        log,
      );
      await provenance.appendNow({ kind: "task.created", taskId: "w-1", payload: { i: 1 } });
      // The first POST is answered 503; the retry (after the backoff) delivers it.
      await waitFor(
        "the witness to receive the checkpoint",
        async () => received.length,
        (n) => n >= 1,
        20_000,
      );
      await flushWitnesses();
      expect(received[0]).toBe(await provenance.latestCheckpoint());
      expect(
        verifyCheckpointNote(received[0] as string, parseTrustedKeys(provenance.verifierKey, "test")),
      ).toMatchObject({ ok: true, checkpoint: { size: 1n } });
    } finally {
      await new Promise((resolve) => server.close(resolve));
      await db.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe.skipIf(!POSTGRES_URL)("the server as a Postgres role that does not own the tables", () => {
  it("starts, writes tasks and provenance, and cannot switch the append-only triggers off, truncate or rewrite", async () => {
    const owner = await freshDatabase("postgres");
    const [{ schema }] = (await owner.query<{ schema: string }>(`SELECT current_schema() AS schema`)) as [
      { schema: string },
    ];
    const role = `agency_app_${randomBytes(4).toString("hex")}`;
    // The README's grants, for this test's schema.
    await owner.exec(`CREATE ROLE ${role} LOGIN;
      GRANT USAGE ON SCHEMA "${schema}" TO ${role};
      GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "${schema}" TO ${role};
      GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA "${schema}" TO ${role};
      REVOKE UPDATE, DELETE ON audit_entries, provenance_records FROM ${role};`);
    const url = new URL(POSTGRES_URL as string);
    url.username = role;
    url.password = "";
    const app = await openDatabase({ url: url.toString(), schema });
    let services: Awaited<ReturnType<typeof createServices>> | undefined;
    try {
      expect(await migrate(app)).toEqual([]);
      services = await createServices(app, pino({ level: "silent" }), testConfig());
      const actor = { kind: "user", id: "tester", name: "tester", role: "operator" } as const;
      const task = await services.tasks.create(
        actor,
        taskSpecSchema.parse({ title: "as the app role", capability: "x" }),
      );
      expect((await services.provenance.verify()).ok).toBe(true);
      await expect(
        app.exec(`ALTER TABLE audit_entries DISABLE TRIGGER audit_entries_no_update_or_delete`),
      ).rejects.toThrow(/must be owner/);
      await expect(
        app.exec(`ALTER TABLE provenance_records DISABLE TRIGGER provenance_records_no_update_or_delete`),
      ).rejects.toThrow(/must be owner/);
      await expect(app.exec(`TRUNCATE audit_entries`)).rejects.toThrow(/permission denied|TRUNCATE refused/);
      await expect(app.exec(`UPDATE provenance_records SET kind = 'x'`)).rejects.toThrow(/permission denied/);
      await expect(app.exec(`DELETE FROM audit_entries WHERE resource_id = '${task.id}'`)).rejects.toThrow(
        /permission denied/,
      );
    } finally {
      services?.hub.stop();
      await services?.stop().catch(() => undefined);
      await app.close();
      await owner.exec(`DROP OWNED BY ${role}; DROP ROLE ${role}`);
      await owner.dispose();
    }
  }, 120_000);
});

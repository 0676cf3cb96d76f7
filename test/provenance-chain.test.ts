import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { openDatabase } from "../src/server/db/database.js";
import { loadSigningKey, publicKeyPem, SecretBox, SecretStore } from "../src/server/keystore/secrets.js";
import { handleProvenanceHttp } from "../src/server/provenance/http.js";
import { parseExportLines, verifyLog } from "../src/server/provenance/log.js";
import { parseTrustedKeys, pinKey, verifyCheckpointNote } from "../src/server/provenance/note.js";
import { ProvenanceService, readPublicKey } from "../src/server/provenance/service.js";
import { ensureTrustedKeysFile } from "../src/server/provenance/trusted-keys.js";
import type { Actor } from "../src/shared/roles.js";
import { DATABASES, freshDatabase, POSTGRES_URL, type TestDatabase } from "./helpers/databases.js";

const run = promisify(execFile);

async function service(db: TestDatabase, master = randomBytes(32)) {
  const trustedKeysFile = path.join(mkdtempSync(path.join(tmpdir(), "agency-prov-keys-")), "keys");
  const signing = await loadSigningKey(new SecretStore(db.prisma, new SecretBox(master)));
  const prov = new ProvenanceService(db, signing, { origin: "agent-agency/test", trustedKeysFile });
  await ensureTrustedKeysFile(trustedKeysFile, {
    verifierKey: prov.verifierKey,
    fingerprint: prov.keyId,
    publicKeyPem: prov.publicKeyPem,
  });
  return prov;
}

/** What someone who owns the tables can do: switch the append-only trigger off for their statement. */
const asOwner = (sql: string) =>
  `ALTER TABLE provenance_records DISABLE TRIGGER provenance_records_no_update_or_delete; ${sql};
   ALTER TABLE provenance_records ENABLE TRIGGER provenance_records_no_update_or_delete`;

describe.each(DATABASES)("provenance log on %s", (kind) => {
  let db: TestDatabase;
  let prov: ProvenanceService;
  beforeAll(async () => {
    db = await freshDatabase(kind);
    prov = await service(db);
    for (let i = 1; i <= 6; i++) {
      await db.prisma.$transaction((tx) =>
        prov.append(tx, {
          kind: i === 1 ? "task.created" : "task.dispatched",
          taskId: `task-${i % 2}`,
          payload: { i, at: new Date("2026-11-25T10:00:00Z"), nested: { b: 2, a: [1, "x", null] } },
        }),
      );
    }
    await db.exec(`CREATE TABLE prov_backup AS SELECT * FROM provenance_records`);
  });
  beforeEach(async () => {
    await db.exec(asOwner(`DELETE FROM provenance_records; INSERT INTO provenance_records SELECT * FROM prov_backup`));
  });
  afterAll(() => db.dispose());

  it("an intact log verifies, record by record, with a signed checkpoint per batch", async () => {
    const report = await prov.verify();
    expect(report).toMatchObject({ ok: true, checked: 6, size: "6", firstBad: null, checkpointsVerified: 6 });
    expect(report.latestCheckpoint).toMatchObject({
      size: "6",
      origin: "agent-agency/test",
      keyFingerprint: prov.keyId,
    });
    const note = (await prov.latestCheckpoint()) as string;
    expect(note.split("\n").slice(0, 3)).toEqual(["agent-agency/test", "6", report.root]);
  });

  it("the database refuses UPDATE, DELETE and TRUNCATE of records to a role that cannot switch triggers off", async () => {
    await expect(db.exec(`UPDATE provenance_records SET kind = 'x' WHERE seq = 2`)).rejects.toThrow(/append-only/);
    await expect(db.exec(`DELETE FROM provenance_records WHERE seq = 6`)).rejects.toThrow(/append-only/);
    await expect(db.exec(`TRUNCATE provenance_records`)).rejects.toThrow(/TRUNCATE refused/);
    expect((await prov.verify()).ok).toBe(true);
  });

  it("a rolled-back transaction leaves no record and no gap", async () => {
    await expect(
      db.prisma.$transaction(async (tx) => {
        await prov.append(tx, { kind: "task.cancel", taskId: "t", payload: {} });
        throw new Error("the change failed");
      }),
    ).rejects.toThrow("the change failed");
    const next = await prov.appendNow({ kind: "task.cancel", taskId: "t", payload: { reason: "x" } });
    expect(next.seq).toBe("7");
    expect((await prov.verify()).ok).toBe(true);
  });

  const tamper: [string, string, string, string][] = [
    ["a tampered payload", `UPDATE provenance_records SET payload = '{"i": 99}' WHERE seq = 3`, "3", "payload"],
    ["a deleted record", `DELETE FROM provenance_records WHERE seq = 3`, "3", "missing"],
    ["an edited kind", `UPDATE provenance_records SET kind = 'task.override' WHERE seq = 2`, "2", "leaf"],
    [
      "a changed time",
      `UPDATE provenance_records SET created_at = created_at + interval '1 hour' WHERE seq = 5`,
      "5",
      "leaf",
    ],
    [
      "two records swapped",
      `UPDATE provenance_records SET seq = -2 WHERE seq = 2; UPDATE provenance_records SET seq = 2 WHERE seq = 3;
       UPDATE provenance_records SET seq = 3 WHERE seq = -2`,
      "2",
      "leaf",
    ],
    ["a deleted first record", `DELETE FROM provenance_records WHERE seq = 1`, "1", "missing"],
  ];
  it.each(tamper)("finds %s at the right record", async (_name, sql, seq, problem) => {
    await db.exec(asOwner(sql));
    const report = await prov.verify();
    expect(report.ok).toBe(false);
    expect(report.firstBad).toMatchObject({ seq, problem });
    expect(report.checked).toBe(Number(seq) - 1);
  });

  it("a payload rewritten with its digest and leaf hash recomputed is caught by the signed checkpoint over it", async () => {
    const { payloadDigest, recordLeafHash } = await import("../src/server/provenance/log.js");
    const row = await db.prisma.provenanceRecord.findUniqueOrThrow({ where: { seq: 4n } });
    const payload = { i: 4, forged: true };
    const digest = payloadDigest(payload);
    const leaf = recordLeafHash({ ...row, payloadDigest: digest }).toString("hex");
    await db.exec(
      asOwner(
        `UPDATE provenance_records SET payload = '${JSON.stringify(payload)}', payload_digest = '${digest}',
         leaf_hash = '${leaf}' WHERE seq = 4`,
      ),
    );
    const report = await prov.verify();
    expect(report.ok).toBe(false);
    expect(report.firstBad).toBeNull();
    // Every checkpoint from size 4 on vouches for the old root: the first of them names where it starts.
    expect(report.findings[0]).toMatchObject({ problem: "checkpoint-root", seq: "4" });
    expect(report.checkpointsVerified).toBe(3);
  });

  it("exports JSON Lines with their checkpoints that verify with the pinned key alone; a tampered export is located", async () => {
    const lines: string[] = [];
    for await (const l of prov.exportJsonl()) lines.push(l);
    expect(lines).toHaveLength(6);
    const pinned = [pinKey(readPublicKey(prov.publicKeyPem))];
    async function* split(text: string[]) {
      for (const t of text) yield t.trimEnd();
    }
    expect(await verifyLog(parseExportLines(split(lines)), { pinned })).toMatchObject({
      ok: true,
      checkpointsVerified: 6,
    });
    const edited = [...lines];
    edited[1] = (edited[1] as string).replace('"i":2', '"i":20');
    expect((await verifyLog(parseExportLines(split(edited)), { pinned })).firstBad).toMatchObject({
      seq: "2",
      problem: "payload",
    });
    const other = await service(await freshDatabase("pglite"));
    const unpinned = await verifyLog(parseExportLines(split(lines)), {
      pinned: [pinKey(readPublicKey(other.publicKeyPem))],
    });
    expect(unpinned.ok).toBe(false);
    expect(unpinned.findings[0]).toMatchObject({ problem: "checkpoint-unpinned", seq: "1" });
    await expect(verifyLog(parseExportLines(split(["{}"])), { pinned })).rejects.toThrow(/Line 1 of the export/);
  });

  it("never forks under concurrent appends", async () => {
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => prov.appendNow({ kind: "task.result", taskId: `c-${i}`, payload: { i } })),
    );
    const report = await prov.verify();
    expect(report).toMatchObject({ ok: true, checked: 26, size: "26" });
  });

  it("refuses a payload that cannot be encoded canonically", async () => {
    await expect(prov.appendNow({ kind: "task.result", payload: { n: Number.NaN } })).rejects.toThrow(/NaN/);
  });
});

describe.each(DATABASES)("a legacy hash chain upgraded at first start on %s", (kind) => {
  it("derives the leaf hashes, the frontier and a first checkpoint once, keeps the old signatures as history", async () => {
    const db = await freshDatabase(kind);
    try {
      // Rows as the per-record-signature chain wrote them before the migration.
      for (let i = 1; i <= 5; i++) {
        const payload = JSON.stringify({ i, legacy: true });
        const { payloadDigest } = await import("../src/server/provenance/log.js");
        await db.query(
          `INSERT INTO provenance_records (seq, kind, task_id, payload, payload_digest, prev_hash, hash, signature, key_id,
             created_at) VALUES ($1, 'task.created', $2, $3::jsonb, $4, $5, $6, 'old-signature', 'old-key', now())`,
          [i, `legacy-${i}`, payload, payloadDigest(JSON.parse(payload)), "0".repeat(64), String(i).repeat(64)],
        );
      }
      const prov = await service(db);
      expect((await prov.verify()).findings[0]).toMatchObject({ problem: "leaf", seq: "1" });
      expect(await prov.init()).toEqual({ upgraded: 5 });
      expect(await prov.init()).toEqual({ upgraded: 0 });
      expect(await prov.verify()).toMatchObject({ ok: true, checked: 5, checkpointsVerified: 1 });
      await prov.appendNow({ kind: "task.cancel", taskId: "legacy-1", payload: { after: "upgrade" } });
      expect(await prov.verify()).toMatchObject({ ok: true, checked: 6, checkpointsVerified: 2 });
      const history = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM provenance_records WHERE signature = 'old-signature' AND leaf_hash IS NOT NULL`,
      );
      expect(history[0]?.n).toBe(5);
      // The one-time allowance is spent: the upgraded rows are as immutable as the rest.
      await expect(db.exec(`UPDATE provenance_records SET payload = '{}' WHERE seq = 2`)).rejects.toThrow(
        /append-only/,
      );
    } finally {
      await db.dispose();
    }
  }, 120_000);
});

describe.skipIf(!POSTGRES_URL)("provenance across processes on one Postgres server", () => {
  it("two connection pools (as two server processes) appending at once keep one log", async () => {
    const db1 = await freshDatabase("postgres");
    const [{ s }] = (await db1.query<{ s: string }>("SELECT current_schema() AS s")) as [{ s: string }];
    const db2 = await openDatabase({ url: POSTGRES_URL, schema: s });
    try {
      const master = randomBytes(32);
      const p1 = await service(db1, master);
      const p2 = await service(db2 as TestDatabase, master);
      expect(p2.keyId).toBe(p1.keyId);
      await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          (i % 2 ? p1 : p2).appendNow({ kind: "task.result", taskId: `p-${i}`, payload: { i } }),
        ),
      );
      expect(await p1.verify()).toMatchObject({ ok: true, checked: 40 });
    } finally {
      await db2.close();
      await db1.dispose();
    }
  });
});

describe("provenance HTTP and the verify script", () => {
  let db: TestDatabase;
  let prov: ProvenanceService;
  let server: http.Server;
  let url: string;
  const dir = mkdtempSync(path.join(tmpdir(), "agency-prov-"));
  beforeAll(async () => {
    db = await freshDatabase("pglite");
    prov = await service(db);
    for (let i = 0; i < 3; i++) await prov.appendNow({ kind: "task.created", taskId: `h-${i}`, payload: { i } });
    const roles: Record<string, Actor> = {
      admin: { kind: "user", id: "a", name: "a", role: "admin" },
      viewer: { kind: "user", id: "v", name: "v", role: "viewer" },
    };
    server = http.createServer((req, res) => {
      const handled = handleProvenanceHttp(req, res, {
        provenance: prov,
        actorFor: async (r) => roles[String(r.headers["x-test-role"])] ?? null,
      });
      if (!handled) res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await db.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it("publishes the public key, the checkpoint to viewers and the export to admins; the CLI verifies them with the key alone", async () => {
    const keyRes = await fetch(`${url}/provenance/public-key`);
    expect(keyRes.status).toBe(200);
    expect(keyRes.headers.get("x-provenance-verifier-key")).toBe(prov.verifierKey);
    const pem = await keyRes.text();
    expect(pem).toBe(prov.publicKeyPem);
    expect(publicKeyPem(readPublicKey(pem))).toBe(pem);
    expect((await fetch(`${url}/provenance/public-key`, { method: "POST" })).status).toBe(405);

    expect((await fetch(`${url}/provenance/checkpoint`)).status).toBe(401);
    const cp = await fetch(`${url}/provenance/checkpoint`, { headers: { "x-test-role": "viewer" } });
    expect(cp.status).toBe(200);
    expect(cp.headers.get("content-type")).toMatch(/^text\/plain/);
    const note = await cp.text();
    const check = verifyCheckpointNote(note, parseTrustedKeys(prov.verifierKey, "test"));
    expect(check).toMatchObject({ ok: true, checkpoint: { size: 3n, origin: "agent-agency/test" } });

    expect((await fetch(`${url}/provenance/export.jsonl`)).status).toBe(401);
    expect((await fetch(`${url}/provenance/export.jsonl`, { headers: { "x-test-role": "viewer" } })).status).toBe(403);
    const exp = await fetch(`${url}/provenance/export.jsonl`, { headers: { "x-test-role": "admin" } });
    expect(exp.status).toBe(200);
    const body = await exp.text();
    expect(body.trim().split("\n")).toHaveLength(3);

    writeFileSync(path.join(dir, "key.pem"), pem);
    writeFileSync(path.join(dir, "key.vkey"), `${prov.verifierKey}\n`);
    writeFileSync(path.join(dir, "log.jsonl"), body);
    writeFileSync(path.join(dir, "checkpoint.txt"), note);
    writeFileSync(path.join(dir, "bad.jsonl"), body.replace('"i":1', '"i":7'));
    const script = ["tsx", "scripts/provenance-verify.ts", "--file"];
    const ok = await run("npx", [...script, path.join(dir, "log.jsonl"), "--public-key", path.join(dir, "key.pem")]);
    expect(ok.stdout).toMatch(/verified: 3 records/);
    const withCheckpoint = await run("npx", [
      ...script,
      path.join(dir, "log.jsonl"),
      "--public-key",
      path.join(dir, "key.vkey"),
      "--checkpoint",
      path.join(dir, "checkpoint.txt"),
    ]);
    expect(withCheckpoint.stdout).toMatch(/verified: 3 records/);
    const bad = await run("npx", [
      ...script,
      path.join(dir, "bad.jsonl"),
      "--public-key",
      path.join(dir, "key.pem"),
    ]).catch((e: { code: number; stdout: string }) => e);
    expect(bad).toMatchObject({ code: 1 });
    expect((bad as { stdout: string }).stdout).toMatch(/BROKEN at record 2 \(payload\)/);
    // Without a pinned key it refuses to judge, and says how to pin one.
    const unpinned = await run("npx", [...script, path.join(dir, "log.jsonl")], {
      env: { ...process.env, PROVENANCE_TRUSTED_KEYS_FILE: "", DATA_DIR: dir },
    }).catch((e: { code: number; stderr: string }) => e);
    expect(unpinned).toMatchObject({ code: 2 });
    expect((unpinned as { stderr: string }).stderr).toMatch(/No pinned public key.*--public-key FILE/s);
  });
});

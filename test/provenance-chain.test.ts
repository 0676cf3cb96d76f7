import { execFile } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { openDatabase } from "../src/server/db/database.js";
import { loadSigningKey, publicKeyId, publicKeyPem, SecretBox, SecretStore } from "../src/server/keystore/secrets.js";
import { parseExportLines, recordHash, signHash, verifyChain } from "../src/server/provenance/chain.js";
import { handleProvenanceHttp } from "../src/server/provenance/http.js";
import { ProvenanceService, readPublicKey } from "../src/server/provenance/service.js";
import type { Actor } from "../src/shared/roles.js";
import { DATABASES, freshDatabase, POSTGRES_URL, type TestDatabase } from "./helpers/databases.js";

const run = promisify(execFile);
const attacker = generateKeyPairSync("ed25519");

async function service(db: TestDatabase, master = randomBytes(32)) {
  const signing = await loadSigningKey(new SecretStore(db.prisma, new SecretBox(master)));
  return new ProvenanceService(db, signing);
}

describe.each(DATABASES)("provenance chain on %s", (kind) => {
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
    await db.exec(`DELETE FROM provenance_records; INSERT INTO provenance_records SELECT * FROM prov_backup`);
  });
  afterAll(() => db.dispose());

  it("an intact chain verifies, record by record", async () => {
    const report = await prov.verify();
    expect(report).toMatchObject({ ok: true, checked: 6, headSeq: "6", firstBad: null });
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
    ["a broken link", `UPDATE provenance_records SET prev_hash = repeat('a', 64) WHERE seq = 4`, "4", "link"],
    ["an edited kind", `UPDATE provenance_records SET kind = 'task.override' WHERE seq = 2`, "2", "hash"],
    [
      "a changed time",
      `UPDATE provenance_records SET created_at = created_at + interval '1 hour' WHERE seq = 5`,
      "5",
      "hash",
    ],
    [
      "two records swapped",
      `UPDATE provenance_records SET seq = -2 WHERE seq = 2; UPDATE provenance_records SET seq = 2 WHERE seq = 3;
       UPDATE provenance_records SET seq = 3 WHERE seq = -2`,
      "2",
      "link",
    ],
    ["a deleted first record", `DELETE FROM provenance_records WHERE seq = 1`, "1", "missing"],
  ];
  it.each(tamper)("finds %s at the right record", async (_name, sql, seq, problem) => {
    await db.exec(sql);
    const report = await prov.verify();
    expect(report.ok).toBe(false);
    expect(report.firstBad).toMatchObject({ seq, problem });
    expect(report.checked).toBe(Number(seq) - 1);
  });

  async function resign(seq: number, keyId: string, payload?: unknown) {
    const row = await db.prisma.provenanceRecord.findUniqueOrThrow({ where: { seq: BigInt(seq) } });
    const { payloadDigest } = await import("../src/server/provenance/chain.js");
    const changed = { ...row, payload: (payload ?? row.payload) as object, keyId };
    const digest = payloadDigest(changed.payload);
    const hash = recordHash({ ...changed, payloadDigest: digest });
    await db.prisma.provenanceRecord.update({
      where: { seq: BigInt(seq) },
      data: {
        payload: changed.payload,
        payloadDigest: digest,
        hash,
        keyId,
        signature: signHash(hash, attacker.privateKey),
      },
    });
  }

  it("finds a record re-signed with another key under that key's id", async () => {
    await resign(4, publicKeyId(attacker.publicKey));
    expect((await prov.verify()).firstBad).toMatchObject({ seq: "4", problem: "key" });
  });

  it("finds a forged payload re-hashed and re-signed with another key under the real key id", async () => {
    await resign(5, prov.keyId, { i: 5, forged: true });
    // its digest and hash are consistent, so only the signature gives it away
    const report = await prov.verify();
    expect(report.firstBad).toMatchObject({ seq: "5", problem: "signature" });
  });

  it("finds a record appended by someone without the key", async () => {
    const head = await db.prisma.provenanceRecord.findUniqueOrThrow({ where: { seq: 6n } });
    const { payloadDigest } = await import("../src/server/provenance/chain.js");
    const base = {
      seq: 7n,
      kind: "task.override",
      taskId: "task-1",
      payloadDigest: payloadDigest({ verdict: "accept" }),
      prevHash: head.hash,
      keyId: prov.keyId,
      createdAt: new Date(),
    };
    const hash = recordHash(base);
    await db.prisma.provenanceRecord.create({
      data: { ...base, payload: { verdict: "accept" }, hash, signature: signHash(hash, attacker.privateKey) },
    });
    expect((await prov.verify()).firstBad).toMatchObject({ seq: "7", problem: "signature" });
  });

  it("exports JSON Lines that verify with the public key alone, and a tampered export is located", async () => {
    const lines: string[] = [];
    for await (const l of prov.exportJsonl()) lines.push(l);
    expect(lines).toHaveLength(6);
    const pub = readPublicKey(prov.publicKeyPem);
    const keys = new Map([[publicKeyId(pub), pub]]);
    async function* split(text: string[]) {
      for (const t of text) yield t.trimEnd();
    }
    expect((await verifyChain(parseExportLines(split(lines)), keys)).ok).toBe(true);
    const edited = [...lines];
    edited[1] = (edited[1] as string).replace('"i":2', '"i":20');
    expect((await verifyChain(parseExportLines(split(edited)), keys)).firstBad).toMatchObject({
      seq: "2",
      problem: "payload",
    });
    const otherKey = generateKeyPairSync("ed25519").publicKey;
    expect(
      (await verifyChain(parseExportLines(split(lines)), new Map([[publicKeyId(otherKey), otherKey]]))).firstBad,
    ).toMatchObject({ seq: "1", problem: "key" });
    await expect(verifyChain(parseExportLines(split(["{}"])), keys)).rejects.toThrow(/Line 1 of the export/);
  });

  it("never forks under concurrent appends", async () => {
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => prov.appendNow({ kind: "task.result", taskId: `c-${i}`, payload: { i } })),
    );
    const report = await prov.verify();
    expect(report).toMatchObject({ ok: true, checked: 26, headSeq: "26" });
  });

  it("refuses a payload that cannot be encoded canonically", async () => {
    await expect(prov.appendNow({ kind: "task.result", payload: { n: Number.NaN } })).rejects.toThrow(/NaN/);
  });
});

describe.skipIf(!POSTGRES_URL)("provenance across processes on one Postgres server", () => {
  it("two connection pools (as two server processes) appending at once keep one chain", async () => {
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

  it("publishes the public key and exports to admins only; the script verifies the export with the key alone", async () => {
    const keyRes = await fetch(`${url}/provenance/public-key`);
    expect(keyRes.status).toBe(200);
    const pem = await keyRes.text();
    expect(pem).toBe(prov.publicKeyPem);
    expect(publicKeyPem(readPublicKey(pem))).toBe(pem);
    expect((await fetch(`${url}/provenance/public-key`, { method: "POST" })).status).toBe(405);

    expect((await fetch(`${url}/provenance/export.jsonl`)).status).toBe(401);
    expect((await fetch(`${url}/provenance/export.jsonl`, { headers: { "x-test-role": "viewer" } })).status).toBe(403);
    const exp = await fetch(`${url}/provenance/export.jsonl`, { headers: { "x-test-role": "admin" } });
    expect(exp.status).toBe(200);
    const body = await exp.text();
    expect(body.trim().split("\n")).toHaveLength(3);

    writeFileSync(path.join(dir, "key.pem"), pem);
    writeFileSync(path.join(dir, "chain.jsonl"), body);
    writeFileSync(path.join(dir, "bad.jsonl"), body.replace('"i":1', '"i":7'));
    const script = ["tsx", "scripts/provenance-verify.ts", "--public-key", path.join(dir, "key.pem"), "--file"];
    const ok = await run("npx", [...script, path.join(dir, "chain.jsonl")]);
    expect(ok.stdout).toMatch(/verified: 3 records, head 3/);
    const bad = await run("npx", [...script, path.join(dir, "bad.jsonl")]).catch(
      (e: { code: number; stdout: string }) => e,
    );
    expect(bad).toMatchObject({ code: 1 });
    expect((bad as { stdout: string }).stdout).toMatch(/BROKEN at record 2 \(payload\)/);
  });
});

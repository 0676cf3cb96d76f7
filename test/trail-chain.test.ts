import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditService, type NewAuditEntry } from "../src/server/audit/service.js";
import { Trail } from "../src/server/audit/trail.js";
import { openDatabase, type Tx } from "../src/server/db/database.js";
import { loadSigningKey, SecretBox, SecretStore } from "../src/server/keystore/secrets.js";
import { canonicalJson, sha256Hex } from "../src/server/provenance/canonical.js";
import { leafBytes, recordLeafHash } from "../src/server/provenance/log.js";
import { EMPTY_ROOT, Frontier, leafHash, referenceRoot } from "../src/server/provenance/merkle.js";
import { isChainConflict, type NewProvenanceRecord, ProvenanceService } from "../src/server/provenance/service.js";
import { ensureTrustedKeysFile } from "../src/server/provenance/trusted-keys.js";
import { DATABASES, freshDatabase, POSTGRES_URL, type TestDatabase } from "./helpers/databases.js";

async function trailOn(db: TestDatabase, master: Buffer) {
  const trustedKeysFile = path.join(mkdtempSync(path.join(tmpdir(), "agency-trail-")), "keys");
  const provenance = new ProvenanceService(
    db,
    await loadSigningKey(new SecretStore(db.prisma, new SecretBox(master))),
    {
      origin: "agent-agency/test",
      trustedKeysFile,
    },
  );
  await ensureTrustedKeysFile(trustedKeysFile, {
    verifierKey: provenance.verifierKey,
    fingerprint: provenance.keyId,
    publicKeyPem: provenance.publicKeyPem,
  });
  return new Trail(new AuditService(db), provenance);
}

/** What a unit of work's end writes (Trail.writeOrdered): audit entries and provenance records. */
const writeIn = (t: Trail, tx: Tx, audit: NewAuditEntry[], provenance: NewProvenanceRecord[]) =>
  t.writeOrdered(tx, { audit, unwrittenAudit: audit, provenance, events: [] });

const count = async (db: TestDatabase, table: string) =>
  Number((await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`))[0]?.n);

describe.each(DATABASES)("chained trail transactions on %s", (kind) => {
  let db: TestDatabase;
  let trail: Trail;
  beforeAll(async () => {
    db = await freshDatabase(kind);
    trail = await trailOn(db, randomBytes(32));
  });
  afterAll(() => db.dispose());

  const write = (i: number) =>
    trail.transaction((tx) =>
      writeIn(
        trail,
        tx,
        [{ actor: { kind: "system", id: "test" }, action: "test.write", resource: { type: "thing", id: `t-${i}` } }],
        [
          { kind: "task.result", taskId: `t-${i}`, payload: { i, part: 1 } },
          { kind: "task.verdict", taskId: `t-${i}`, payload: { i, part: 2 } },
        ],
      ),
    );

  it("concurrent chained transactions take turns and keep one chain, audit rows and records together", async () => {
    await Promise.all(Array.from({ length: 15 }, (_, i) => write(i)));
    expect(await trail.provenance.verify()).toMatchObject({ ok: true, checked: 30 });
    expect(await count(db, "audit_entries")).toBe(15);
  });

  it("a chained transaction that fails leaves nothing behind and the next one links to the real head", async () => {
    const before = await trail.provenance.verify();
    await expect(
      trail.transaction(async (tx) => {
        await writeIn(trail, tx, [], [{ kind: "task.result", taskId: "doomed", payload: {} }]);
        throw new Error("the change failed");
      }),
    ).rejects.toThrow("the change failed");
    expect((await trail.provenance.verify()).checked).toBe(before.checked);
    await write(100);
    expect(await trail.provenance.verify()).toMatchObject({ ok: true, checked: before.checked + 2 });
    expect((await trail.provenance.list({ taskId: "doomed", limit: 10 })).items).toHaveLength(0);
  });

  it("an append outside a chained transaction is picked up: the next chained one does not fork from it", async () => {
    await write(200);
    await trail.provenance.appendNow({ kind: "task.cancel", taskId: "outside", payload: { by: "script" } });
    await write(201);
    const report = await trail.provenance.verify();
    expect(report.ok).toBe(true);
    const kinds = (await trail.provenance.list({ limit: 5 })).items.map((r) => r.kind);
    expect(kinds.slice(0, 3)).toEqual(["task.verdict", "task.result", "task.cancel"]);
  });

  it("only a sequence collision on the log counts as a conflict to run again", () => {
    const adapterError = (constraint: string) => ({
      message: "Raw query failed.",
      meta: {
        driverAdapterError: {
          cause: { code: "23505", message: `duplicate key value violates unique constraint "${constraint}"` },
        },
      },
    });
    expect(isChainConflict(adapterError("provenance_records_pkey"))).toBe(true);
    expect(isChainConflict(adapterError("provenance_records_hash_key"))).toBe(false);
    expect(isChainConflict(adapterError("tasks_pkey"))).toBe(false);
    expect(isChainConflict({ code: "23505", constraint: "provenance_records_pkey", message: "duplicate key" })).toBe(
      true,
    );
    expect(
      isChainConflict({
        meta: {
          driverAdapterError: {
            cause: {
              originalCode: "23505",
              originalMessage: 'duplicate key value violates unique constraint "provenance_records_pkey"',
            },
          },
        },
      }),
    ).toBe(true);
    expect(isChainConflict(new Error("deadlock detected"))).toBe(false);
    expect(isChainConflict(null)).toBe(false);
  });
});

describe("leaf hash and tree", () => {
  it("a leaf is SHA-256(0x00 || canonical JSON of the record's fields), whatever they hold", () => {
    for (const taskId of [null, "t-1", 'quote " and \\ backslash', "ünïcødé ✓"]) {
      const r = {
        seq: 12345678901234n,
        kind: "task.verdict",
        taskId,
        payloadDigest: "a".repeat(64),
        createdAt: new Date("2026-11-25T12:34:56.789Z"),
      };
      const canonical = canonicalJson({ ...r, seq: r.seq.toString(), createdAt: r.createdAt.toISOString() });
      expect(leafBytes(r)).toBe(canonical);
      expect(recordLeafHash(r).toString("hex")).toBe(
        sha256Hex(Buffer.concat([Buffer.from([0]), Buffer.from(canonical)])),
      );
    }
  });

  it("the frontier gives RFC 6962's root at every size, appended one by one or in batches, and survives storage", () => {
    expect(Frontier.empty().root().equals(EMPTY_ROOT)).toBe(true);
    expect(EMPTY_ROOT.toString("hex")).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const leaves = Array.from({ length: 70 }, (_, i) => leafHash(`leaf ${i}`));
    let one = Frontier.empty();
    for (let n = 1; n <= leaves.length; n++) {
      one = one.append([leaves[n - 1] as Buffer]);
      expect(one.root().equals(referenceRoot(leaves.slice(0, n)))).toBe(true);
      const stored = Frontier.decode(one.size, one.encode());
      expect(stored.root().equals(one.root())).toBe(true);
    }
    const batched = Frontier.empty().append(leaves.slice(0, 13)).append(leaves.slice(13, 64)).append(leaves.slice(64));
    expect(batched.root().equals(one.root())).toBe(true);
    expect(() => Frontier.decode(5n, one.encode())).toThrow(/holds/);
  });

  it("matches RFC 6962's published test vector for a tree of 8 leaves", () => {
    // The leaves of Certificate Transparency's reference tests (merkle_tree_test.cc): "", 00, 10, 2021, 3031, 40414243,
    // 5051525354555657, 606162636465666768696a6b6c6d6e6f; root 5dc9da79…
    const inputs = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];
    const tree = Frontier.empty().append(inputs.map((h) => leafHash(Buffer.from(h, "hex"))));
    expect(tree.root().toString("hex")).toBe("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328");
  });
});

describe.skipIf(!POSTGRES_URL)("chained trail transactions from two processes on one Postgres server", () => {
  it("each process links to its own idea of the head; collisions are refused and run again, the chain never forks", async () => {
    const db1 = await freshDatabase("postgres");
    const [{ s }] = (await db1.query<{ s: string }>("SELECT current_schema() AS s")) as [{ s: string }];
    const db2 = (await openDatabase({ url: POSTGRES_URL, schema: s })) as TestDatabase;
    try {
      const master = randomBytes(32);
      const t1 = await trailOn(db1, master);
      const t2 = await trailOn(db2, master);
      // Both processes learn the head first, so their next appends collide for real.
      await t1.transaction((tx) => writeIn(t1, tx, [], [{ kind: "task.created", taskId: "warm-1", payload: {} }]));
      await t2.transaction((tx) => writeIn(t2, tx, [], [{ kind: "task.created", taskId: "warm-2", payload: {} }]));
      let runs = 0;
      await Promise.all(
        Array.from({ length: 30 }, (_, i) => {
          const t = i % 2 ? t1 : t2;
          return t.transaction(async (tx) => {
            runs++;
            await writeIn(
              t,
              tx,
              [
                {
                  actor: { kind: "system", id: `p${i % 2}` },
                  action: "test.write",
                  resource: { type: "thing", id: `x-${i}` },
                },
              ],
              [{ kind: "task.result", taskId: `x-${i}`, payload: { i } }],
            );
          });
        }),
      );
      expect(await t1.provenance.verify()).toMatchObject({ ok: true, checked: 32 });
      expect(await count(db1, "audit_entries")).toBe(30);
      // Process 1 knew a head process 2 had moved past: at least its first transaction ran again.
      expect(runs).toBeGreaterThan(30);
    } finally {
      await db2.close();
      await db1.dispose();
    }
  });
});

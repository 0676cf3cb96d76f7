import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditService } from "../src/server/audit/service.js";
import { Trail } from "../src/server/audit/trail.js";
import { openDatabase } from "../src/server/db/database.js";
import { loadSigningKey, SecretBox, SecretStore } from "../src/server/keystore/secrets.js";
import { canonicalJson, sha256Hex } from "../src/server/provenance/canonical.js";
import { recordHash } from "../src/server/provenance/chain.js";
import { isChainConflict, ProvenanceService } from "../src/server/provenance/service.js";
import { DATABASES, freshDatabase, POSTGRES_URL, type TestDatabase } from "./helpers/databases.js";

async function trailOn(db: TestDatabase, master: Buffer) {
  const provenance = new ProvenanceService(db, await loadSigningKey(new SecretStore(db.prisma, new SecretBox(master))));
  return new Trail(new AuditService(db), provenance);
}

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
      trail.write(
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
        await trail.write(tx, [], [{ kind: "task.result", taskId: "doomed", payload: {} }]);
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

  it("only a sequence or hash collision on the chain counts as a conflict to run again", () => {
    const adapterError = (constraint: string) => ({
      message: "Raw query failed.",
      meta: {
        driverAdapterError: {
          cause: { code: "23505", message: `duplicate key value violates unique constraint "${constraint}"` },
        },
      },
    });
    expect(isChainConflict(adapterError("provenance_records_pkey"))).toBe(true);
    expect(isChainConflict(adapterError("provenance_records_hash_key"))).toBe(true);
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

describe("record hash", () => {
  it("is the SHA-256 of the canonical JSON of the record's fields, whatever they hold", () => {
    for (const taskId of [null, "t-1", 'quote " and \\ backslash', "ünïcødé ✓"]) {
      const r = {
        seq: 12345678901234n,
        kind: "task.verdict",
        taskId,
        payloadDigest: "a".repeat(64),
        prevHash: "b".repeat(64),
        keyId: "c".repeat(32),
        createdAt: new Date("2026-11-25T12:34:56.789Z"),
      };
      const canonical = canonicalJson({ ...r, seq: r.seq.toString(), createdAt: r.createdAt.toISOString() });
      expect(recordHash(r)).toBe(sha256Hex(canonical));
    }
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
      await t1.transaction((tx) => t1.write(tx, [], [{ kind: "task.created", taskId: "warm-1", payload: {} }]));
      await t2.transaction((tx) => t2.write(tx, [], [{ kind: "task.created", taskId: "warm-2", payload: {} }]));
      let runs = 0;
      await Promise.all(
        Array.from({ length: 30 }, (_, i) => {
          const t = i % 2 ? t1 : t2;
          return t.transaction(async (tx) => {
            runs++;
            await t.write(
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

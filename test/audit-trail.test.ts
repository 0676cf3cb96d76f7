import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditService } from "../src/server/audit/service.js";
import { auditListInputSchema } from "../src/shared/audit.js";
import { DATABASES, freshDatabase, type TestDatabase } from "./helpers/databases.js";

describe.each(DATABASES)("audit trail on %s", (kind) => {
  let db: TestDatabase;
  let audit: AuditService;
  const list = (input: Record<string, unknown>) => audit.list(auditListInputSchema.parse(input));
  beforeAll(async () => {
    db = await freshDatabase(kind);
    audit = new AuditService(db);
  });
  afterAll(() => db.dispose());

  it("records inside the caller's transaction: a rolled-back change leaves no entry", async () => {
    await expect(
      db.prisma.$transaction(async (tx) => {
        await audit.record(tx, {
          actor: { kind: "user", id: "alice" },
          action: "task.cancel",
          resource: { type: "task", id: "t-0" },
        });
        throw new Error("the change failed");
      }),
    ).rejects.toThrow("the change failed");
    expect((await list({})).items).toHaveLength(0);
  });

  it("keeps actor, action, resource, before/after, client and time, with secrets redacted", async () => {
    await db.prisma.$transaction((tx) =>
      audit.record(tx, {
        actor: { kind: "user", id: "alice" },
        action: "user.create",
        resource: { type: "user", id: "u-1" },
        before: null,
        after: {
          username: "bob",
          role: "viewer",
          password: "correct horse battery",
          nested: { tokenHash: "abc", keep: 1 },
        },
        client: { address: "10.0.0.7", userAgent: "test-agent/1.0" },
      }),
    );
    const [e] = (await list({})).items;
    expect(e).toMatchObject({
      actorKind: "user",
      actorId: "alice",
      action: "user.create",
      resourceType: "user",
      resourceId: "u-1",
      before: null,
      after: { username: "bob", role: "viewer", password: "[redacted]", nested: { tokenHash: "[redacted]", keep: 1 } },
      clientAddress: "10.0.0.7",
      userAgent: "test-agent/1.0",
    });
    expect(e?.createdAt).toBeInstanceOf(Date);
    expect(JSON.stringify(e)).not.toContain("correct horse");
  });

  it("filters by actor, action, resource and time range, and pages with a cursor without gaps or repeats", async () => {
    await db.prisma.$transaction(async (tx) => {
      for (let i = 0; i < 25; i++) {
        await audit.record(tx, {
          actor: { kind: i % 5 === 0 ? "system" : "user", id: i % 2 ? "bob" : "carol" },
          action: i % 3 ? "task.create" : "task.cancel",
          resource: { type: "task", id: `t-${i % 4}` },
        });
      }
    });
    expect((await list({ actorId: "bob" })).items.every((e) => e.actorId === "bob")).toBe(true);
    expect((await list({ actorKind: "system", limit: 200 })).items).toHaveLength(5);
    expect((await list({ action: "task.cancel", limit: 200 })).items).toHaveLength(9);
    expect((await list({ resourceType: "task", resourceId: "t-1", limit: 200 })).items).toHaveLength(6);
    expect((await list({ from: new Date(Date.now() + 60_000) })).items).toHaveLength(0);
    expect((await list({ to: new Date(0) })).items).toHaveLength(0);

    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await list({ resourceType: "task", limit: 7, ...(cursor ? { cursor } : {}) });
      seen.push(...page.items.map((e) => e.id));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(seen).toHaveLength(25);
    expect(new Set(seen).size).toBe(25);
    expect([...seen].sort((a, b) => Number(b) - Number(a))).toEqual(seen);
  });

  it("refuses bad filters", () => {
    expect(() => auditListInputSchema.parse({ cursor: "abc" })).toThrow(/nextCursor/);
    expect(() => auditListInputSchema.parse({ limit: 0 })).toThrow();
    expect(() => auditListInputSchema.parse({ from: "2026-02-01", to: "2026-01-01" })).toThrow(
      /from must not be after to/,
    );
    expect(() => auditListInputSchema.parse({ actorKind: "robot" })).toThrow();
  });

  it("is append-only in the database too: UPDATE and DELETE are refused", async () => {
    await expect(db.exec(`UPDATE audit_entries SET action = 'x'`)).rejects.toThrow(/append-only/);
    await expect(db.exec(`DELETE FROM audit_entries`)).rejects.toThrow(/append-only/);
    expect((await list({ limit: 200 })).items.length).toBeGreaterThan(0);
  });
});

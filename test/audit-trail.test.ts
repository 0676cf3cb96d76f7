import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditService } from "../src/server/audit/service.js";
import { AUDIT_ACTIONS, auditListInputSchema } from "../src/shared/audit.js";
import { taskSpecSchema } from "../src/shared/task-spec.js";
import { workerRegisterSchema } from "../src/shared/workers.js";
import { DATABASES, freshDatabase, type TestDatabase } from "./helpers/databases.js";
import { actor, type Harness, harness } from "./helpers/services.js";

/** Every `.ts` file under a folder, generated code left out. */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === "generated" ? [] : sources(p);
    return p.endsWith(".ts") ? [p] : [];
  });
}

describe("the list of audit actions", () => {
  it("names every action the server writes", () => {
    const written = new Set<string>();
    for (const file of sources("src/server")) {
      const text = readFileSync(file, "utf8");
      // `action: "x"`, `action: cond ? "x" : "y"` and `action ?? "x"` (a step's default).
      for (const m of text.matchAll(/\baction(?::|\s*\?\?)[^,;\n]*/g)) {
        for (const q of m[0].matchAll(/"([a-z_]+\.[a-z_]+)"/g)) written.add(q[1] as string);
      }
    }
    expect(written.size).toBeGreaterThan(20);
    expect([...written].filter((a) => !(AUDIT_ACTIONS as readonly string[]).includes(a))).toEqual([]);
  });
});

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

  it("names each entry's resource in the same query: a task's title, a worker's, user's, token's or view's name", async () => {
    const h: Harness = await harness(kind);
    try {
      const admin = { ...actor("admin", "root"), kind: "user" as const };
      const task = await h.services.tasks.create(admin, taskSpecSchema.parse({ title: "Rotate the <b>keys</b>" }));
      const user = await h.services.auth.createUser(
        { actor: admin },
        { username: "nina", role: "viewer", password: "nina password 1" },
      );
      const token = await h.services.auth.createToken(
        { actor: { ...actor("viewer", "nina"), kind: "user" } },
        "ci robot",
      );
      await h.services.views.save(admin, "Stuck tasks", { states: ["running"] });
      const worker = await h.services.workers.register(
        { actor: admin },
        workerRegisterSchema.parse({ name: "builder-7", url: "http://127.0.0.1:9/", capabilities: ["build"] }),
      );
      const all = await h.services.audit.list(auditListInputSchema.parse({ limit: 200 }));
      const named = (type: string, id?: string) =>
        all.items.filter((e) => e.resourceType === type && (!id || e.resourceId === id)).map((e) => e.resourceName);
      expect(named("task", task.id)).toEqual(["Rotate the <b>keys</b>"]);
      expect(named("user", user.id)).toContain("nina");
      expect(named("api_token", token.id)).toEqual(["ci robot"]);
      expect(named("saved_view")).toEqual(["Stuck tasks"]);
      expect(named("worker", worker.id)).toEqual(["builder-7"]);
      // A resource that is not there (or an id that is not a uuid) has no name, and the entry is still listed.
      await h.db.prisma.$transaction((tx) =>
        h.services.audit.recordMany(tx, [
          { actor: admin, action: "task.cancel", resource: { type: "task", id: "not-a-uuid" } },
          {
            actor: admin,
            action: "task.cancel",
            resource: { type: "task", id: "00000000-0000-4000-8000-000000000000" },
          },
          { actor: admin, action: "auth.sign_in_failed", resource: { type: "user", id: null } },
        ]),
      );
      const latest = (await h.services.audit.list(auditListInputSchema.parse({ limit: 3 }))).items;
      expect(latest.map((e) => [e.resourceId, e.resourceName])).toEqual([
        [null, null],
        ["00000000-0000-4000-8000-000000000000", null],
        ["not-a-uuid", null],
      ]);
      // Filtered by resource, a page still carries the name.
      const byTask = await h.services.audit.list(
        auditListInputSchema.parse({ resourceType: "task", resourceId: task.id }),
      );
      expect(byTask.items.map((e) => [e.action, e.resourceName])).toEqual([["task.create", "Rotate the <b>keys</b>"]]);
    } finally {
      await h.dispose();
    }
  }, 120_000);

  it("is append-only in the database too: UPDATE and DELETE are refused", async () => {
    await expect(db.exec(`UPDATE audit_entries SET action = 'x'`)).rejects.toThrow(/append-only/);
    await expect(db.exec(`DELETE FROM audit_entries`)).rejects.toThrow(/append-only/);
    expect((await list({ limit: 200 })).items.length).toBeGreaterThan(0);
  });
});

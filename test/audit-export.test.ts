import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AUDIT_CSV_COLUMNS, csvField } from "../src/server/audit/csv.js";
import { AUDIT_EXPORT_PAGE } from "../src/server/audit/http.js";
import type { NewAuditEntry } from "../src/server/audit/service.js";
import { SECURITY_HEADERS } from "../src/server/serving/headers.js";
import { DATABASES } from "./helpers/databases.js";
import { type RunningApp, startApp, tokenFor } from "./helpers/server.js";

/** An RFC 4180 reader, strict: every record ends with CRLF, a quoted field's quotes are doubled. */
function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let fields: string[] = [];
  let i = 0;
  while (i < text.length) {
    let value = "";
    if (text[i] === '"') {
      i++;
      for (;;) {
        const q = text.indexOf('"', i);
        if (q < 0) throw new Error("unterminated quoted field");
        value += text.slice(i, q);
        if (text[q + 1] === '"') {
          value += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
    } else {
      const end = text.slice(i).search(/,|\r\n/);
      if (end < 0) throw new Error("a record does not end with CRLF");
      value = text.slice(i, i + end);
      if (/["\r\n]/.test(value)) throw new Error(`unquoted field holds a quote or line break: ${value}`);
      i += end;
    }
    fields.push(value);
    if (text[i] === ",") i++;
    else if (text.startsWith("\r\n", i)) {
      records.push(fields);
      fields = [];
      i += 2;
    } else throw new Error(`unexpected ${JSON.stringify(text[i])} after a field`);
  }
  return records;
}

const asObjects = (rows: string[][]) => {
  const [head, ...body] = rows;
  expect(head).toEqual([...AUDIT_CSV_COLUMNS]);
  return body.map((r) => Object.fromEntries((head as string[]).map((k, j) => [k, r[j] as string])));
};

describe("csvField", () => {
  it("quotes as RFC 4180 says and defuses what a spreadsheet would run", () => {
    expect(csvField("plain")).toBe("plain");
    expect(csvField(null)).toBe("");
    expect(csvField('say "hi", then go')).toBe('"say ""hi"", then go"');
    expect(csvField("two\nlines")).toBe('"two\nlines"');
    for (const start of ["=", "+", "-", "@", "\t", "\r"]) expect(csvField(`${start}1+1`)).toBe(`"'${start}1+1"`);
    expect(csvField("a=b")).toBe("a=b");
  });
});

describe.each(DATABASES)("GET /audit/export.csv on %s", (kind) => {
  let s: RunningApp;
  let viewerToken: string;
  let taskId: string;
  const get = (query: string, headers: Record<string, string> = { authorization: `Bearer ${viewerToken}` }) =>
    fetch(`${s.url}/audit/export.csv${query}`, { headers });

  beforeAll(async () => {
    s = await startApp(kind);
    viewerToken = await tokenFor(s.services, "vera", "viewer");
    taskId = (await s.http.tasks.create.mutate({ title: 'Quarterly "report", final', capability: "nobody-has-it" })).id;
  }, 180_000);
  afterAll(() => s.stop());

  it("answers the viewer with the matching entries as RFC 4180 CSV, times in UTC, the task's title, headers set", async () => {
    const res = await get(`?resourceType=task&resourceId=${taskId}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/csv; charset=utf-8; header=present");
    expect(res.headers.get("content-disposition")).toMatch(/^attachment; filename="agency-audit-\d{8}T\d{6}Z\.csv"$/);
    expect(res.headers.get("cache-control")).toBe("no-store");
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) expect(res.headers.get(k)).toBe(v);
    expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
    const rows = asObjects(parseCsv(await res.text()));
    expect(rows).toHaveLength(1);
    const listed = (await s.http.audit.list.query({ resourceId: taskId })).items[0];
    expect(rows[0]).toMatchObject({
      id: listed?.id,
      time_utc: listed?.createdAt.toISOString(),
      actor_kind: "token",
      actor_id: "local-operator",
      actor: "local-operator",
      action: "task.create",
      resource_type: "task",
      resource_id: taskId,
      resource_name: 'Quarterly "report", final',
      client_address: "127.0.0.1",
    });
    expect(rows[0]?.time_utc).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(JSON.parse(rows[0]?.after as string)).toMatchObject({ title: 'Quarterly "report", final' });
    const head = await fetch(`${s.url}/audit/export.csv`, {
      method: "HEAD",
      headers: { authorization: `Bearer ${viewerToken}` },
    });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
  });

  it("defuses cells a spreadsheet would take for formulas, and labels the agency's own entries", async () => {
    const hostile: NewAuditEntry[] = ['=HYPERLINK("http://x")', "+1", "-1", "@SUM(A1)", "\tx", "\rx"].map((id) => ({
      actor: { kind: "user", id },
      action: "view.save",
      resource: { type: "saved_view", id: "v, with comma" },
      after: { note: "line one\nline two" },
      client: { userAgent: '=cmd|" /c calc"!A0' },
    }));
    hostile.push({ actor: { kind: "system", id: "recovery" }, action: "task.requeue", resource: { type: "task" } });
    await s.db.prisma.$transaction((tx) => s.services.audit.recordMany(tx, hostile));
    const text = await (await get("?action=view.save")).text();
    const rows = asObjects(parseCsv(text));
    expect(rows.map((r) => r.actor_id).sort()).toEqual(
      ["'\tx", "'\rx", "'+1", "'-1", '\'=HYPERLINK("http://x")', "'@SUM(A1)"].sort(),
    );
    for (const r of rows) {
      expect(r.resource_id).toBe("v, with comma");
      expect(r.user_agent).toBe('\'=cmd|" /c calc"!A0');
      expect(JSON.parse(r.after as string)).toEqual({ note: "line one\nline two" });
    }
    // No field of the file, as a spreadsheet splits it, starts with a formula character.
    for (const r of parseCsv(text)) for (const f of r) expect(f).not.toMatch(/^[=+\-@\t\r]/);
    const system = asObjects(parseCsv(await (await get("?actorKind=system&action=task.requeue")).text()));
    expect(system).toEqual([
      expect.objectContaining({ actor_kind: "system", actor_id: "recovery", actor: "Agency (system)" }),
    ]);
  });

  it("applies every filter of audit.list and refuses a filter it cannot use, naming the problem", async () => {
    const all = asObjects(parseCsv(await (await get("")).text()));
    const byActor = asObjects(parseCsv(await (await get("?actorId=local-operator")).text()));
    expect(byActor.length).toBeGreaterThan(0);
    expect(byActor.length).toBeLessThan(all.length);
    expect(byActor.every((r) => r.actor_id === "local-operator")).toBe(true);
    expect(asObjects(parseCsv(await (await get("?actorKind=token&action=task.create")).text()))).toHaveLength(1);
    const future = new Date(Date.now() + 3_600_000).toISOString();
    expect(asObjects(parseCsv(await (await get(`?from=${future}`)).text()))).toHaveLength(0);
    expect(asObjects(parseCsv(await (await get(`?to=${future}`)).text()))).toHaveLength(all.length);
    const listed = await s.http.audit.list.query({ limit: 200 });
    expect(all.map((r) => r.id)).toEqual(listed.items.map((e) => e.id));

    for (const [query, message] of [
      ["?actorKind=robot", /actorKind/],
      ["?from=2026-02-01&to=2026-01-01", /from must not be after to/],
      ["?from=yesterday", /from/],
      ["?cursor=5", /cursor is not a filter of the export/],
      ["?action=a&action=b", /action is given more than once/],
    ] as const) {
      const res = await get(query);
      expect(res.status, query).toBe(400);
      expect(await res.text()).toMatch(message);
    }
  });

  it("refuses a caller without a session or token, a bad token, a session that must change its password, and another origin", async () => {
    const anon = await get("", {});
    expect(anon.status).toBe(401);
    expect(await anon.text()).toMatch(/Sign in first/);
    expect((await get("", { authorization: "Bearer not-a-token" })).status).toBe(401);
    expect((await fetch(`${s.url}/audit/export.csv`, { method: "POST" })).status).toBe(405);

    const admin = s.httpAs(await tokenFor(s.services, "ada", "admin"));
    await admin.users.create.mutate({ username: "newbie", role: "viewer", password: "first password 1" });
    const signIn = await fetch(`${s.url}/trpc/auth.signIn`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ json: { username: "newbie", password: "first password 1" } }),
    });
    const cookie = (signIn.headers.get("set-cookie") ?? "").split(";")[0] as string;
    expect(cookie).toMatch(/^agency_session=/);
    const flagged = await get("", { cookie });
    expect(flagged.status).toBe(403);
    expect(await flagged.text()).toMatch(/choose your own/);
    const changed = await fetch(`${s.url}/trpc/auth.changePassword`, {
      method: "POST",
      headers: { "content-type": "application/json", cookie, origin: s.url },
      body: JSON.stringify({ json: { currentPassword: "first password 1", newPassword: "second password 2" } }),
    });
    expect(changed.status).toBe(200);
    const bySession = await get("?action=task.create", { cookie, origin: s.url });
    expect(bySession.status).toBe(200);
    expect(asObjects(parseCsv(await bySession.text()))).toHaveLength(1);
    expect((await get("", { cookie, origin: "https://evil.example" })).status).toBe(403);
  });

  it("pages through more entries than one page holds, newest first, none missing or repeated", async () => {
    const many: NewAuditEntry[] = Array.from({ length: 1_234 }, (_, i) => ({
      actor: { kind: "worker", id: "bulk-writer" },
      action: "worker.update",
      resource: { type: "worker", id: `w-${i}` },
    }));
    await s.db.prisma.$transaction((tx) => s.services.audit.recordMany(tx, many));
    const res = await get("?actorId=bulk-writer");
    const rows = asObjects(parseCsv(await res.text()));
    expect(rows).toHaveLength(1_234);
    expect(new Set(rows.map((r) => r.id)).size).toBe(1_234);
    const ids = rows.map((r) => BigInt(r.id as string));
    for (let i = 1; i < ids.length; i++) expect(ids[i - 1] === (ids[i] as bigint) + 1n).toBe(true);
    expect(rows.at(0)?.resource_id).toBe("w-1233");
    expect(rows.at(-1)?.resource_id).toBe("w-0");
    // The export reads the trail a page at a time, never all of it at once.
    const sizes: number[] = [];
    for await (const page of s.services.audit.entries({ actorId: "bulk-writer" }, AUDIT_EXPORT_PAGE))
      sizes.push(page.length);
    expect(sizes).toEqual([500, 500, 234]);
  });
});

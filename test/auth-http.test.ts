import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createTRPCUntypedClient, createWSClient, httpLink, TRPCClientError, wsLink } from "@trpc/client";
import superjson from "superjson";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { appRouter } from "../src/server/router.js";
import { hasRole, type Role } from "../src/shared/roles.js";
import { DATABASES } from "./helpers/databases.js";
import { type RunningApp, startApp, tokenFor } from "./helpers/server.js";

type Need = "public" | Role;
/** Every procedure and the role it needs. A new procedure fails this test until it is listed here. */
const NEEDS: Record<string, Need> = {
  "system.health": "public",
  "system.whoami": "viewer",
  "system.tierPolicies": "viewer",
  "tasks.create": "operator",
  "tasks.list": "viewer",
  "tasks.get": "viewer",
  "tasks.count": "viewer",
  "tasks.cancel": "operator",
  "tasks.retry": "operator",
  "tasks.rerun": "operator",
  "tasks.answer": "operator",
  "tasks.override": "admin",
  "tasks.approve": "operator",
  "tasks.reject": "operator",
  "tasks.approvalQueue": "viewer",
  "tasks.approvalPermission": "viewer",
  "tasks.cancelMany": "operator",
  "tasks.retryMany": "operator",
  "tasks.onEvent": "viewer",
  "tasks.events": "viewer",
  "views.list": "viewer",
  "views.save": "viewer",
  "views.delete": "viewer",
  "workers.list": "viewer",
  "workers.get": "viewer",
  "workers.register": "admin",
  "workers.update": "admin",
  "workers.remove": "admin",
  "workers.trip": "admin",
  "workers.reset": "admin",
  "workers.pause": "admin",
  "workers.drain": "admin",
  "workers.resume": "admin",
  "workers.attempts": "viewer",
  "workers.history": "viewer",
  "workers.activity": "viewer",
  "auth.signIn": "public",
  "auth.signOut": "public",
  "auth.me": "public",
  "auth.changePassword": "viewer",
  "users.list": "admin",
  "users.create": "admin",
  "users.update": "admin",
  "users.disable": "admin",
  "users.resetPassword": "admin",
  "users.endSessions": "admin",
  "tokens.list": "viewer",
  "tokens.create": "viewer",
  "tokens.revoke": "viewer",
  "audit.list": "viewer",
  "provenance.verify": "viewer",
  "provenance.list": "viewer",
  "provenance.proof": "viewer",
  "provenance.publicKey": "public",
  "metrics.snapshot": "viewer",
  "metrics.live": "viewer",
  "metrics.history": "viewer",
  "metrics.usage": "viewer",
  "chat.sessions.list": "viewer",
  "chat.sessions.get": "viewer",
  "chat.sessions.create": "operator",
  "chat.sessions.rename": "operator",
  "chat.sessions.end": "operator",
  "chat.messages": "viewer",
  "chat.send": "operator",
  "chat.onMessage": "viewer",
  "chat.typing": "operator",
  "chat.onTyping": "viewer",
  "webhooks.list": "admin",
  "webhooks.get": "admin",
  "webhooks.create": "admin",
  "webhooks.update": "admin",
  "webhooks.remove": "admin",
  "webhooks.rotateSecret": "admin",
  "webhooks.deliveries": "admin",
  "webhooks.replay": "admin",
  "webhooks.sendTest": "admin",
};
const procedures = Object.entries(
  appRouter._def.procedures as unknown as Record<string, { _def: { type: string } }>,
).map(([path, p]) => ({ path, type: p._def.type as "query" | "mutation" | "subscription" }));
type Untyped = ReturnType<typeof createTRPCUntypedClient>;
const CALLERS = ["anonymous", "viewer", "operator", "admin"] as const;

/** "allowed" past the role check (the call may still fail on its input), or the refusal code. */
async function outcome(client: Untyped, path: string, type: "query" | "mutation" | "subscription"): Promise<string> {
  // An input no procedure accepts keeps allowed calls from changing anything where the procedure takes input.
  const input = { __roleMatrixProbe: true, id: "not-a-uuid" };
  if (type === "subscription") {
    return new Promise((resolve) => {
      const sub = client.subscription(
        path,
        {},
        {
          onStarted: () => {
            sub.unsubscribe();
            resolve("allowed");
          },
          onError: (err) => resolve(refusal(err)),
        },
      );
    });
  }
  try {
    await (type === "query" ? client.query(path, input) : client.mutation(path, input));
    return "allowed";
  } catch (err) {
    return refusal(err);
  }
}
function refusal(err: unknown): string {
  const code = err instanceof TRPCClientError ? (err.data as { code?: string } | undefined)?.code : undefined;
  return code === "UNAUTHORIZED" || code === "FORBIDDEN" ? code : "allowed";
}
/** Signs a user an admin created in, and sets their own password as the console makes them; returns the cookie. */
async function firstSignIn(s: RunningApp, username: string, initial: string, chosen: string): Promise<string> {
  const res = await fetch(`${s.url}/trpc/auth.signIn`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ json: { username, password: initial } }),
  });
  const cookie = (res.headers.get("set-cookie") ?? "").split(";")[0] as string;
  const changed = await fetch(`${s.url}/trpc/auth.changePassword`, {
    method: "POST",
    headers: { "content-type": "application/json", cookie, origin: s.url },
    body: JSON.stringify({ json: { currentPassword: initial, newPassword: chosen } }),
  });
  if (changed.status !== 200) throw new Error(`changing ${username}'s password failed: ${await changed.text()}`);
  return cookie;
}

const expected = (need: Need, caller: (typeof CALLERS)[number]) =>
  need === "public"
    ? "allowed"
    : caller === "anonymous"
      ? "UNAUTHORIZED"
      : hasRole(caller, need)
        ? "allowed"
        : "FORBIDDEN";

describe.each(DATABASES)("sign-in and roles over HTTP and WebSocket on %s", (kind) => {
  let s: RunningApp;
  const tokens: Record<(typeof CALLERS)[number], string | null> = {
    anonymous: null,
    viewer: "",
    operator: "",
    admin: "",
  };
  beforeAll(async () => {
    s = await startApp(kind, { LOCAL_ACTOR_ID: "matrix-admin", LOCAL_ACTOR_ROLE: "admin" });
    tokens.admin = s.token;
    tokens.viewer = await tokenFor(s.services, "matrix-viewer", "viewer");
    tokens.operator = await tokenFor(s.services, "matrix-operator", "operator");
  });
  afterAll(() => s.stop());

  it("lists every procedure in the role matrix", () => {
    expect(procedures.map((p) => p.path).sort()).toEqual(Object.keys(NEEDS).sort());
  });

  it("enforces each procedure's role over HTTP", async () => {
    const rows: string[] = [];
    const want: string[] = [];
    for (const caller of CALLERS) {
      const t = tokens[caller];
      const client = createTRPCUntypedClient({
        links: [
          httpLink({
            url: `${s.url}/trpc`,
            transformer: superjson,
            headers: () => (t ? { Authorization: `Bearer ${t}` } : {}),
          }),
        ],
      });
      for (const p of procedures.filter((x) => x.type !== "subscription")) {
        rows.push(`${caller} ${p.path} ${await outcome(client, p.path, p.type)}`);
        want.push(`${caller} ${p.path} ${expected(NEEDS[p.path] as Need, caller)}`);
      }
    }
    expect(rows).toEqual(want);
  });

  it("enforces each procedure's role over WebSocket (connectionParams token)", async () => {
    const rows: string[] = [];
    const want: string[] = [];
    for (const caller of CALLERS) {
      const t = tokens[caller];
      const ws = createWSClient({
        url: `${s.url.replace("http", "ws")}/trpc`,
        WebSocket: WebSocket as never,
        ...(t ? { connectionParams: { token: t } } : {}),
      });
      const client = createTRPCUntypedClient({ links: [wsLink({ client: ws, transformer: superjson })] });
      for (const p of procedures.filter((x) => x.path !== "auth.signIn")) {
        rows.push(`${caller} ${p.path} ${await outcome(client, p.path, p.type)}`);
        want.push(`${caller} ${p.path} ${expected(NEEDS[p.path] as Need, caller)}`);
      }
      await ws.close();
    }
    expect(rows).toEqual(want);
  });

  it("a wrong or revoked token is anonymous", async () => {
    const t = await tokenFor(s.services, "matrix-viewer", "viewer");
    expect(await s.httpAs(t).system.whoami.query()).toMatchObject({
      kind: "token",
      id: "matrix-viewer",
      role: "viewer",
    });
    const [row] = (
      await s.services.auth.listTokens({ actor: { kind: "user", id: "matrix-admin", name: "a", role: "admin" } }, true)
    )
      .filter((x) => x.username === "matrix-viewer")
      .slice(0, 1);
    await s.httpAs(s.token).tokens.revoke.mutate({ id: row!.id });
    await expect(s.httpAs(`${t}x`).system.whoami.query()).rejects.toMatchObject({ data: { code: "UNAUTHORIZED" } });
    const revoked = (await s.httpAs(s.token).tokens.list.query({ all: true })).find((x) => x.id === row!.id);
    expect(revoked?.revokedAt).toBeInstanceOf(Date);
  });

  it("signs in with a session cookie (HttpOnly, SameSite=Strict; not Secure on an untrusted proxy's word) and signs out", async () => {
    await s
      .httpAs(s.token)
      .users.create.mutate({ username: "cookie-user", role: "operator", password: "cookie password 1" });
    const signIn = (headers: Record<string, string> = {}) =>
      fetch(`${s.url}/trpc/auth.signIn`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify({ json: { username: "Cookie-User", password: "cookie password 1" } }),
      });
    const res = await signIn();
    expect(res.status).toBe(200);
    const setCookie = res.headers.get("set-cookie") ?? "";
    expect(setCookie).toMatch(/^agency_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+$/);
    const session = /agency_session=([^;]+)/.exec(setCookie)?.[1] as string;
    expect(await res.text()).not.toContain(session);
    // This server trusts no proxy (TRUST_PROXY unset): a client's own X-Forwarded-Proto changes nothing.
    // test/http-headers.test.ts checks the cookie is Secure behind a trusted one.
    expect((await signIn({ "x-forwarded-proto": "https" })).headers.get("set-cookie")).not.toMatch(/Secure/);

    // As the console's own page would: browsers send Origin with every POST.
    const call = (path: string, init: RequestInit = {}) =>
      fetch(`${s.url}/trpc/${path}`, {
        ...init,
        headers: { cookie: `agency_session=${session}`, origin: s.url, ...init.headers },
      });
    const me = await (await call("auth.me")).json();
    expect(me.result.data.json).toMatchObject({
      via: "session",
      user: { username: "cookie-user", role: "operator", mustChangePassword: true },
    });
    // An admin set this password: until the user chooses their own, nothing else is open.
    const blocked = await call("system.whoami");
    expect(blocked.status).toBe(403);
    expect(await blocked.text()).toContain("choose your own");
    const changed = await call("auth.changePassword", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ json: { currentPassword: "cookie password 1", newPassword: "cookie password 2" } }),
    });
    expect(changed.status).toBe(200);
    expect((await call("system.whoami")).status).toBe(200);
    expect((await call("users.list")).status).toBe(403);

    const out = await call("auth.signOut", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(out.headers.get("set-cookie")).toMatch(/^agency_session=; .*Max-Age=0/);
    expect((await call("system.whoami")).status).toBe(401);
    const audit = await s.httpAs(s.token).audit.list.query({ actorId: "cookie-user" });
    expect(audit.items.map((e) => e.action)).toEqual([
      "auth.sign_out",
      "user.change_password",
      "auth.sign_in",
      "auth.sign_in",
    ]);
  });

  it("refuses sign-in over WebSocket and wrong passwords, and rate-limits them", async () => {
    const { client, close } = s.wsAs(null);
    await expect(
      client.auth.signIn.mutate({ username: "cookie-user", password: "cookie password 1" }),
    ).rejects.toMatchObject({
      data: { code: "BAD_REQUEST" },
    });
    await close();
    const anon = s.httpAs(null);
    for (let i = 0; i < 5; i++) {
      await expect(anon.auth.signIn.mutate({ username: "cookie-user", password: "wrong" })).rejects.toMatchObject({
        data: { code: "UNAUTHORIZED" },
      });
    }
    await expect(
      anon.auth.signIn.mutate({ username: "cookie-user", password: "cookie password 2" }),
    ).rejects.toMatchObject({
      data: { code: "TOO_MANY_REQUESTS" },
    });
    await expect(
      anon.users.create.mutate({ username: "x1", role: "admin", password: "long enough pw" }),
    ).rejects.toMatchObject({
      data: { code: "UNAUTHORIZED" },
    });
  });

  it("closes a WebSocket's live streams when its token is revoked or its session signs out", async () => {
    const token = await tokenFor(s.services, "stream-viewer", "viewer");
    const errors: string[] = [];
    // The server's own services (live metrics) subscribe to the hub too: count from what they hold.
    const baseline = s.services.hub.subscriberCount;
    const { client, close } = s.wsAs(token);
    const sub = client.tasks.onEvent.subscribe({}, { onError: (e) => errors.push(String(e.data?.code)) });
    await expect.poll(() => s.services.hub.subscriberCount).toBeGreaterThan(baseline);
    const before = s.services.hub.subscriberCount;
    const mine = (await s.httpAs(token).tokens.list.query({})).find((t) => t.username === "stream-viewer");
    await s.httpAs(token).tokens.revoke.mutate({ id: mine!.id });
    // the socket is closed; the client reconnects without valid credentials and is refused
    await expect.poll(() => errors).toContain("UNAUTHORIZED");
    expect(s.services.hub.subscriberCount).toBeLessThan(before);
    sub.unsubscribe();
    await close();

    await s
      .httpAs(s.token)
      .users.create.mutate({ username: "stream-op", role: "operator", password: "stream password 1" });
    const cookie = await firstSignIn(s, "stream-op", "stream password 1", "stream password 2");
    // The console's own page: the upgrade carries its Origin.
    class CookieSocket extends WebSocket {
      constructor(address: string, protocols?: string | string[]) {
        super(address, protocols, { headers: { cookie, origin: s.url } });
      }
    }
    const ws = createWSClient({ url: `${s.url.replace("http", "ws")}/trpc`, WebSocket: CookieSocket as never });
    const cookieClient = createTRPCUntypedClient({ links: [wsLink({ client: ws, transformer: superjson })] });
    expect(await cookieClient.query("system.whoami")).toMatchObject({ kind: "user", id: "stream-op" });
    const sessionErrors: string[] = [];
    const sub2 = cookieClient.subscription("tasks.onEvent", {}, { onError: (e) => sessionErrors.push(refusal(e)) });
    await fetch(`${s.url}/trpc/auth.signOut`, {
      method: "POST",
      headers: { "content-type": "application/json", cookie, origin: s.url },
      body: "{}",
    });
    await expect.poll(() => sessionErrors).toContain("UNAUTHORIZED");
    sub2.unsubscribe();
    await ws.close();
  });

  it("a changed role closes the user's live socket, which comes back with the new role", async () => {
    const admin = s.httpAs(s.token);
    const u = await admin.users.create.mutate({
      username: "demoted",
      role: "operator",
      password: "demoted password 1",
    });
    const token = await tokenFor(s.services, "demoted", "operator");
    const { client, close } = s.wsAs(token);
    expect(await client.system.whoami.query()).toMatchObject({ role: "operator" });
    await admin.users.update.mutate({ id: u.id, role: "viewer" });
    await expect.poll(() => client.system.whoami.query().then((a) => a?.role)).toBe("viewer");
    await expect(client.tasks.create.mutate({ title: "not any more" })).rejects.toMatchObject({
      data: { code: "FORBIDDEN" },
    });
    await close();
  });

  it("takes mutations only as JSON, so a cross-site form cannot post one with the cookie", async () => {
    const res = await fetch(`${s.url}/trpc/auth.signIn`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ json: { username: "stream-op", password: "stream password 2" } }),
    });
    const cookie = (res.headers.get("set-cookie") ?? "").split(";")[0] as string;
    // Even from our own origin (a foreign one is refused first: test/web-origin.test.ts).
    for (const type of ["text/plain", "application/x-www-form-urlencoded"]) {
      const r = await fetch(`${s.url}/trpc/tasks.create`, {
        method: "POST",
        headers: { "content-type": type, cookie, origin: s.url },
        body: JSON.stringify({ json: { title: "forged" } }),
      });
      expect(r.status).toBe(415);
    }
    expect((await s.httpAs(s.token).tasks.list.query({ filter: { text: "forged" } })).items).toEqual([]);
  });

  it("publishes the provenance key, exports the chain to admins, and verifies it", async () => {
    const pem = await (await fetch(`${s.url}/provenance/public-key`)).text();
    expect(pem).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    expect((await s.httpAs(null).provenance.publicKey.query()).pem).toBe(pem);
    await s.services.provenance.appendNow({ kind: "task.created", taskId: "t-1", payload: { title: "x" } });
    expect((await fetch(`${s.url}/provenance/export.jsonl`)).status).toBe(401);
    const viewer = await tokenFor(s.services, "export-viewer", "viewer");
    expect(
      (await fetch(`${s.url}/provenance/export.jsonl`, { headers: { authorization: `Bearer ${viewer}` } })).status,
    ).toBe(403);
    const exp = await fetch(`${s.url}/provenance/export.jsonl`, { headers: { authorization: `Bearer ${s.token}` } });
    expect(exp.status).toBe(200);
    expect((await exp.text()).trim().split("\n").length).toBeGreaterThanOrEqual(1);
    expect(await s.httpAs(viewer).provenance.verify.query()).toMatchObject({ ok: true, firstBad: null });
  });
});

describe("console security headers", () => {
  it("serve the console with a CSP that allows no inline script and no framing", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "agency-web-"));
    writeFileSync(path.join(dir, "index.html"), "<!doctype html><title>x</title>");
    const s = await startApp("pglite", { WEB_DIST_DIR: dir });
    try {
      const res = await fetch(`${s.url}/tasks`);
      expect(res.status).toBe(200);
      const csp = res.headers.get("content-security-policy") ?? "";
      expect(csp).toContain("script-src 'self';");
      expect(csp).not.toMatch(/script-src[^;]*unsafe-inline/);
      expect(csp).toContain("frame-ancestors 'none'");
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(res.headers.get("referrer-policy")).toBe("no-referrer");
    } finally {
      await s.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

import { createTRPCUntypedClient, createWSClient, wsLink } from "@trpc/client";
import superjson from "superjson";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { DATABASES } from "./helpers/databases.js";
import { type RunningApp, startApp, tokenFor } from "./helpers/server.js";
import { mutation, rawRequest, signInCookie, trpcCode } from "./helpers/web-client.js";

describe.each(DATABASES)("sessions, forced password changes and sign-in limits over HTTP on %s", (kind) => {
  let s: RunningApp;
  /** As the console's own page: Origin on every call with the cookie. */
  const asPage = (cookie: string) => ({ headers: { cookie, origin: s.url } });
  const whoami = async (cookie: string) => trpcCode(await rawRequest(`${s.url}/trpc/system.whoami`, asPage(cookie)));
  const admin = () => s.httpAs(s.token);
  const userId = async (username: string) =>
    (await admin().users.list.query()).find((u) => u.username === username)?.id as string;
  const auditOf = async (id: string) =>
    (await admin().audit.list.query({ resourceType: "user", resourceId: id })).items.map((e) => e.action);

  /** A user an admin made, signed in once and past the forced change: returns a session cookie. */
  async function readyUser(username: string, password: string): Promise<string> {
    await admin().users.create.mutate({ username, role: "operator", password: "initial password 0" });
    const first = await signInCookie(s.url, username, "initial password 0");
    const changed = await mutation(
      s.url,
      "auth.changePassword",
      { currentPassword: "initial password 0", newPassword: password },
      asPage(first.cookie as string),
    );
    expect(changed.status).toBe(200);
    return first.cookie as string;
  }

  beforeAll(async () => {
    // The sign-in limits are the defaults: 5 free failures per account and address, 20 per address,
    // then 30 s doubling up to 15 minutes.
    s = await startApp(kind, { LOCAL_ACTOR_ID: "sessions-admin", LOCAL_ACTOR_ROLE: "admin" });
  });
  afterAll(() => s.stop());

  it("an admin-created user must choose their own password first: everything else is FORBIDDEN, tokens included", async () => {
    await admin().users.create.mutate({ username: "newbie", role: "operator", password: "set by the admin" });
    expect((await admin().users.list.query()).find((u) => u.username === "newbie")?.mustChangePassword).toBe(true);
    const { cookie, res } = await signInCookie(s.url, "newbie", "set by the admin");
    expect((res.json as { user: { mustChangePassword: boolean } }).user.mustChangePassword).toBe(true);
    const c = cookie as string;

    const list = await rawRequest(`${s.url}/trpc/tasks.list?input=${encodeURIComponent('{"json":{}}')}`, asPage(c));
    expect(list.status).toBe(403);
    expect((list.json as { message: string }).message).toMatch(/set by an administrator: choose your own/);
    const create = await mutation(s.url, "tasks.create", { title: "before choosing a password" }, asPage(c));
    expect(trpcCode(create)).toBe("FORBIDDEN");
    const token = await mutation(s.url, "tokens.create", { name: "sneaky" }, asPage(c));
    expect(trpcCode(token)).toBe("FORBIDDEN");
    // what stays open: who am I (auth.me), health (short answer), changing the password, signing out
    const me = await rawRequest(`${s.url}/trpc/auth.me`, asPage(c));
    expect(me.json).toMatchObject({ user: { username: "newbie", mustChangePassword: true } });
    expect((await rawRequest(`${s.url}/trpc/system.health`, asPage(c))).json).toEqual({
      ready: true,
      status: "ready",
    });
    const same = await mutation(
      s.url,
      "auth.changePassword",
      { currentPassword: "set by the admin", newPassword: "set by the admin" },
      asPage(c),
    );
    expect(trpcCode(same)).toBe("BAD_REQUEST");
    const changed = await mutation(
      s.url,
      "auth.changePassword",
      { currentPassword: "set by the admin", newPassword: "newbie's own password" },
      asPage(c),
    );
    expect(changed.status).toBe(200);
    expect(await whoami(c)).toBe("OK");
    expect(trpcCode(await mutation(s.url, "tasks.create", { title: "after choosing one" }, asPage(c)))).toBe("OK");
    expect((await admin().users.list.query()).find((u) => u.username === "newbie")?.mustChangePassword).toBe(false);
  });

  it("a must-change session's WebSocket is restricted too, and comes back unrestricted once the password is changed", async () => {
    await admin().users.create.mutate({ username: "wanda", role: "operator", password: "wanda from admin" });
    const cookie = (await signInCookie(s.url, "wanda", "wanda from admin")).cookie as string;
    class PageSocket extends WebSocket {
      constructor(address: string, protocols?: string | string[]) {
        super(address, protocols, { headers: { cookie, origin: s.url } });
      }
    }
    const ws = createWSClient({
      url: `${s.url.replace("http", "ws")}/trpc`,
      WebSocket: PageSocket as never,
      retryDelayMs: () => 50,
    });
    const client = createTRPCUntypedClient({ links: [wsLink({ client: ws, transformer: superjson })] });
    try {
      await expect(client.query("system.whoami")).rejects.toMatchObject({ data: { code: "FORBIDDEN" } });
      expect(await client.query("auth.me")).toMatchObject({ user: { username: "wanda", mustChangePassword: true } });
      const changed = await mutation(
        s.url,
        "auth.changePassword",
        { currentPassword: "wanda from admin", newPassword: "wanda's own one" },
        asPage(cookie),
      );
      expect(changed.status).toBe(200);
      // the guard closes the socket resolved as restricted; the client reconnects with the same cookie
      await expect.poll(() => client.query("system.whoami").catch(() => null)).toMatchObject({ id: "wanda" });
    } finally {
      await ws.close();
    }
  });

  it("a password change ends the user's other sessions, not the one that made it", async () => {
    const here = await readyUser("pia", "pia password one");
    const there = (await signInCookie(s.url, "pia", "pia password one", { localAddress: "127.0.0.2" }))
      .cookie as string;
    const third = (await signInCookie(s.url, "pia", "pia password one")).cookie as string;
    expect(await whoami(there)).toBe("OK");
    const changed = await mutation(
      s.url,
      "auth.changePassword",
      { currentPassword: "pia password one", newPassword: "pia password two" },
      asPage(here),
    );
    expect(changed.json).toMatchObject({ changed: true, endedSessions: 2 });
    expect(await whoami(here)).toBe("OK");
    expect(await whoami(there)).toBe("UNAUTHORIZED");
    expect(await whoami(third)).toBe("UNAUTHORIZED");
    const entry = (await admin().audit.list.query({ action: "user.change_password", actorId: "pia" })).items[0];
    expect(entry?.after).toMatchObject({ endedOtherSessions: 2, wasRequired: false });
  });

  it("an admin ends all of a user's sessions", async () => {
    const one = await readyUser("ned", "ned password one");
    const two = (await signInCookie(s.url, "ned", "ned password one")).cookie as string;
    const id = await userId("ned");
    expect(await admin().users.endSessions.mutate({ id })).toEqual({ endedSessions: 2 });
    expect(await whoami(one)).toBe("UNAUTHORIZED");
    expect(await whoami(two)).toBe("UNAUTHORIZED");
    expect(await auditOf(id)).toContain("user.end_sessions");
    // an API token is not a session: it keeps working until revoked
    const token = await tokenFor(s.services, "ned", "operator");
    expect(await s.httpAs(token).system.whoami.query()).toMatchObject({ id: "ned" });
    await expect(
      s.httpAs(await tokenFor(s.services, "ned", "operator")).users.endSessions.mutate({ id }),
    ).rejects.toMatchObject({ data: { code: "FORBIDDEN" } });
  });

  it("an admin resets a password: the user's sessions end, and the temporary one only lets them choose a new one", async () => {
    const before = await readyUser("rosa", "rosa password one");
    const id = await userId("rosa");
    const { temporaryPassword, user } = await admin().users.resetPassword.mutate({ id });
    expect(temporaryPassword).toHaveLength(20);
    expect(user.mustChangePassword).toBe(true);
    expect(await whoami(before)).toBe("UNAUTHORIZED");
    expect((await signInCookie(s.url, "rosa", "rosa password one")).res.status).toBe(401);
    const temp = (await signInCookie(s.url, "rosa", temporaryPassword)).cookie as string;
    expect(await whoami(temp)).toBe("FORBIDDEN");
    await mutation(
      s.url,
      "auth.changePassword",
      { currentPassword: temporaryPassword, newPassword: "rosa password two" },
      asPage(temp),
    );
    expect(await whoami(temp)).toBe("OK");
    const actions = await auditOf(id);
    expect(actions).toContain("user.reset_password");
    expect(JSON.stringify(await admin().audit.list.query({ resourceId: id }))).not.toContain(temporaryPassword);
    // not for oneself, and not for someone who does not exist
    const self = await userId("sessions-admin");
    await expect(admin().users.resetPassword.mutate({ id: self })).rejects.toMatchObject({
      data: { code: "BAD_REQUEST" },
      message: expect.stringMatching(/your own password/),
    });
    await expect(
      admin().users.resetPassword.mutate({ id: "00000000-0000-4000-8000-000000000000" }),
    ).rejects.toMatchObject({ data: { code: "NOT_FOUND" } });
  });

  it("five wrong passwords from one address do not stop the right one from another, and the delays grow", async () => {
    await readyUser("vic", "vic password one");
    const A = "127.0.0.2";
    const from = (address: string, password: string) => signInCookie(s.url, "vic", password, { localAddress: address });
    for (let i = 0; i < 5; i++) expect((await from(A, "wrong password")).res.status).toBe(401);
    const delayed = (await from(A, "vic password one")).res;
    expect(trpcCode(delayed)).toBe("TOO_MANY_REQUESTS");
    const firstWait = (delayed.json as { data: { retryAfterMs: number } }).data.retryAfterMs;
    expect(firstWait).toBeGreaterThan(0);
    expect(firstWait).toBeLessThanOrEqual(30_000);
    expect(Number(delayed.headers["retry-after"])).toBe(Math.ceil(firstWait / 1000));
    expect((delayed.json as { message: string }).message).toMatch(/from your address; try again in \d+ seconds/);

    // the owner, elsewhere, is not locked out
    expect((await from("127.0.0.3", "vic password one")).cookie).toMatch(/^agency_session=/);

    // Time is moved on by moving the recorded failures back, so no test waits a real minute.
    const pass = (ms: number) =>
      s.db.exec(
        `UPDATE sign_in_attempts SET created_at = created_at - interval '1 millisecond' * ${Math.ceil(ms) + 50} WHERE key = 'pair:vic@127.0.0.2'`,
      );
    await pass(firstWait);
    expect((await from(A, "wrong password")).res.status).toBe(401);
    const second = (await from(A, "wrong password")).res;
    const secondWait = (second.json as { data: { retryAfterMs: number } }).data.retryAfterMs;
    expect(secondWait).toBeGreaterThan(30_000);
    expect(secondWait).toBeLessThanOrEqual(60_000);
    await pass(secondWait);
    expect((await from(A, "vic password one")).cookie).toMatch(/^agency_session=/);
  }, 120_000);

  it("limits one address across accounts without touching other addresses", async () => {
    const B = "127.0.0.4";
    for (let i = 0; i < 20; i++) {
      expect((await signInCookie(s.url, `nobody${i}`, "wrong password", { localAddress: B })).res.status).toBe(401);
    }
    const refused = await signInCookie(s.url, "vic", "vic password one", { localAddress: B });
    expect(trpcCode(refused.res)).toBe("TOO_MANY_REQUESTS");
    expect((refused.res.json as { message: string }).message).toMatch(/for your address/);
    expect((await signInCookie(s.url, "vic", "vic password one", { localAddress: "127.0.0.5" })).cookie).toMatch(
      /^agency_session=/,
    );
    // 22 sign-ins, each a real scrypt check (32 MiB, tens of ms; more on a loaded CI machine)
  }, 120_000);
});

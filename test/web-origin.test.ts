import { createTRPCUntypedClient, createWSClient, wsLink } from "@trpc/client";
import superjson from "superjson";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { DATABASES } from "./helpers/databases.js";
import { type RunningApp, startApp, tokenFor } from "./helpers/server.js";
import { mutation, rawRequest, signInCookie, trpcCode } from "./helpers/web-client.js";

const EVIL = "http://evil.example";
const ALLOWED = "http://console.example:8443";
const METRICS_TOKEN = "metrics-scraper-token-0123456789abcdefghij";

/** What the upgrade answered: "open", or the HTTP status of the refusal. */
function upgrade(url: string, headers: Record<string, string>): Promise<string> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.once("open", () => {
      ws.close();
      resolve("open");
    });
    ws.once("unexpected-response", (_req, res) => {
      resolve(String(res.statusCode));
      ws.terminate();
    });
    ws.once("error", (err) => resolve(`error: ${err.message}`));
  });
}

/** A tRPC client over one WebSocket whose handshake carries these headers (as a browser page's would). */
function wsClientWith(url: string, headers: Record<string, string>, connectionParams?: Record<string, string>) {
  class HeaderSocket extends WebSocket {
    constructor(address: string, protocols?: string | string[]) {
      super(address, protocols, { headers });
    }
  }
  const client = createWSClient({
    url,
    WebSocket: HeaderSocket as never,
    retryDelayMs: () => 50,
    ...(connectionParams ? { connectionParams } : {}),
  });
  return {
    trpc: createTRPCUntypedClient({ links: [wsLink({ client, transformer: superjson })] }),
    close: () => client.close(),
  };
}

describe.each(DATABASES)("the web boundary (Origin, /metrics, health) on %s", (kind) => {
  let s: RunningApp;
  let wsUrl: string;
  let port: number;
  /** An operator's session cookie, after the first-sign-in password change. */
  let cookie: string;
  let viewerToken: string;
  const taskTitles = async (text: string) =>
    (await s.httpAs(s.token).tasks.list.query({ filter: { text } })).items.map((t) => t.title);

  beforeAll(async () => {
    s = await startApp(kind, {
      LOCAL_ACTOR_ID: "origin-admin",
      LOCAL_ACTOR_ROLE: "admin",
      ALLOWED_ORIGINS: ALLOWED,
      METRICS_TOKEN,
    });
    wsUrl = `${s.url.replace("http", "ws")}/trpc`;
    port = Number(new URL(s.url).port);
    viewerToken = await tokenFor(s.services, "origin-viewer", "viewer");
    await s.httpAs(s.token).users.create.mutate({ username: "olga", role: "operator", password: "initial password 1" });
    const first = await signInCookie(s.url, "olga", "initial password 1");
    const changed = await mutation(
      s.url,
      "auth.changePassword",
      { currentPassword: "initial password 1", newPassword: "olga's own password" },
      { headers: { cookie: first.cookie as string, origin: s.url } },
    );
    expect(changed.status).toBe(200);
    cookie = first.cookie as string;
  });
  afterAll(() => s.stop());

  it("refuses a WebSocket upgrade with the operator's cookie from a foreign origin, and tasks.create cannot happen over it", async () => {
    expect(await upgrade(wsUrl, { cookie, origin: EVIL })).toBe("403");
    // The same page's attempt through a tRPC client: the socket never opens, nothing is created.
    const evil = wsClientWith(wsUrl, { cookie, origin: EVIL });
    const outcome = await Promise.race([
      evil.trpc.mutation("tasks.create", { title: "hijacked over ws" }).then(
        () => "created",
        () => "refused",
      ),
      new Promise((r) => setTimeout(() => r("never opened"), 1500)),
    ]);
    await evil.close();
    expect(outcome).not.toBe("created");
    expect(await taskTitles("hijacked over ws")).toEqual([]);

    // the console's own page, same cookie: works
    const own = wsClientWith(wsUrl, { cookie, origin: s.url });
    expect(await own.trpc.query("system.whoami")).toMatchObject({ kind: "user", id: "olga" });
    await own.trpc.mutation("tasks.create", { title: "created over own ws" });
    await own.close();
    expect(await taskTitles("created over own ws")).toEqual(["created over own ws"]);
  });

  it("refuses sibling ports, sibling hosts and a missing Origin with the cookie; ALLOWED_ORIGINS admits one", async () => {
    expect(await upgrade(wsUrl, { cookie, origin: `http://127.0.0.1:${port + 1}` })).toBe("403");
    expect(await upgrade(wsUrl, { cookie, origin: `http://localhost:${port + 1}` })).toBe("403");
    expect(await upgrade(wsUrl, { cookie, origin: `https://127.0.0.1:${port}` })).toBe("403");
    expect(await upgrade(wsUrl, { cookie, origin: "null" })).toBe("403");
    expect(await upgrade(wsUrl, { cookie })).toBe("403");
    expect(await upgrade(wsUrl, { cookie, origin: ALLOWED })).toBe("open");
    expect(await upgrade(wsUrl, { cookie, origin: s.url })).toBe("open");
  });

  it("leaves token-authenticated WebSockets alone, whatever their Origin", async () => {
    const tokenWs = wsClientWith(wsUrl, { origin: EVIL }, { token: s.token });
    expect(await tokenWs.trpc.query("system.whoami")).toMatchObject({ kind: "token", id: "origin-admin" });
    await tokenWs.close();
    expect(await upgrade(wsUrl, { origin: EVIL, authorization: `Bearer ${s.token}`, cookie })).toBe("open");
  });

  it("refuses a cookie POST to /trpc/tasks.create from a foreign origin (403) and creates nothing", async () => {
    const forged = await mutation(
      s.url,
      "tasks.create",
      { title: "forged over http" },
      { headers: { cookie, origin: EVIL } },
    );
    expect(forged.status).toBe(403);
    expect(trpcCode(forged)).toBe("FORBIDDEN");
    expect((forged.json as { message: string }).message).toMatch(/only from this server's own pages/);
    const sibling = await mutation(
      s.url,
      "tasks.create",
      { title: "forged over http" },
      { headers: { cookie, origin: `http://localhost:${port + 1}` } },
    );
    expect(sibling.status).toBe(403);
    // browsers send Origin with every POST: a cookie POST without one is not a page of ours
    const bare = await mutation(s.url, "tasks.create", { title: "forged over http" }, { headers: { cookie } });
    expect(bare.status).toBe(403);
    // batched, with the mutation second
    const batch = await rawRequest(`${s.url}/trpc/system.whoami,tasks.create?batch=1`, {
      method: "POST",
      headers: { cookie, origin: EVIL },
      body: JSON.stringify({ 0: { json: null }, 1: { json: { title: "forged over http" } } }),
    });
    expect(batch.status).toBe(403);
    expect(await taskTitles("forged over http")).toEqual([]);

    const own = await mutation(
      s.url,
      "tasks.create",
      { title: "posted by own page" },
      { headers: { cookie, origin: s.url } },
    );
    expect(own.status).toBe(200);
    const allowed = await mutation(
      s.url,
      "tasks.create",
      { title: "posted by allowed origin" },
      { headers: { cookie, origin: ALLOWED } },
    );
    expect(allowed.status).toBe(200);
  });

  it("refuses cross-site cookie GETs, and foreign sign-ins (login CSRF); a same-origin GET without Origin works", async () => {
    const list = `${s.url}/trpc/system.whoami`;
    expect((await rawRequest(list, { headers: { cookie, origin: EVIL } })).status).toBe(403);
    expect((await rawRequest(list, { headers: { cookie, "sec-fetch-site": "cross-site" } })).status).toBe(403);
    expect((await rawRequest(list, { headers: { cookie, "sec-fetch-site": "same-site" } })).status).toBe(403);
    expect((await rawRequest(list, { headers: { cookie, "sec-fetch-site": "same-origin" } })).status).toBe(200);
    expect((await rawRequest(list, { headers: { cookie } })).status).toBe(200);
    const provenance = await rawRequest(`${s.url}/provenance/export.jsonl`, { headers: { cookie, origin: EVIL } });
    expect(provenance.status).toBe(403);

    const csrf = await signInCookie(s.url, "olga", "olga's own password", { origin: EVIL });
    expect(csrf.res.status).toBe(403);
    expect(csrf.cookie).toBeNull();
    expect((await signInCookie(s.url, "olga", "olga's own password", { origin: s.url })).cookie).toMatch(
      /^agency_session=/,
    );
  });

  it("leaves bearer-token calls alone, whatever their Origin", async () => {
    const res = await mutation(
      s.url,
      "tasks.create",
      { title: "token call from anywhere" },
      { headers: { authorization: `Bearer ${s.token}`, origin: EVIL, cookie } },
    );
    expect(res.status).toBe(200);
    expect(await taskTitles("token call from anywhere")).toEqual(["token call from anywhere"]);
  });

  it("GET /metrics needs a token: anonymous 401, METRICS_TOKEN 200, a viewer's API token 200", async () => {
    const anonymous = await rawRequest(`${s.url}/metrics`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers["www-authenticate"]).toMatch(/^Bearer/);
    expect(anonymous.body).not.toMatch(/agency_worker|breaker/);
    expect((await rawRequest(`${s.url}/metrics`, { headers: { cookie } })).status).toBe(401);
    const wrong = await rawRequest(`${s.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}x` } });
    expect(wrong.status).toBe(401);
    const scraper = await rawRequest(`${s.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(scraper.status).toBe(200);
    expect(scraper.body).toContain("# TYPE agency_queue_depth gauge");
    const viewer = await rawRequest(`${s.url}/metrics`, { headers: { authorization: `Bearer ${viewerToken}` } });
    expect(viewer.status).toBe(200);
  });

  it("anonymous system.health says only whether the server is ready; signed-in callers get the full answer", async () => {
    expect(await s.httpAs(null).system.health.query()).toEqual({ ready: true, status: "ready" });
    const raw = await rawRequest(`${s.url}/trpc/system.health`);
    expect(raw.body).not.toMatch(/workers|breaker|version|capabilities/);
    const full = await s.httpAs(viewerToken).system.health.query();
    expect(full).toMatchObject({ ready: true, status: "ok", version: expect.any(String), workers: expect.any(Array) });
    const viaCookie = await rawRequest(`${s.url}/trpc/system.health`, { headers: { cookie } });
    expect((viaCookie.json as { workers?: unknown[] }).workers).toBeInstanceOf(Array);
  });
});

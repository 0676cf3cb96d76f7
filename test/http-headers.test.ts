import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { moveSourceMaps, precompress } from "../scripts/precompress.js";
import { SECURITY_HEADERS } from "../src/server/serving/headers.js";
import type { Actor } from "../src/shared/roles.js";
import { DATABASES } from "./helpers/databases.js";
import {
  ADMIN_TOKEN,
  type EngineApp,
  type FaultWorker,
  startEngineApp,
  startFaultWorker,
  waitFor,
} from "./helpers/fault-worker.js";
import { type RunningApp, startApp } from "./helpers/server.js";

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The bytes as they came over the wire (not decoded). */
  body: Buffer;
}

/** One plain HTTP request: no client-side decompression or caching, so the test sees what the server sent. */
function request(
  base: string,
  pathname: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${pathname}`, { method: opts.method ?? "GET", headers: opts.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(opts.body);
  });
}

const bearer = { authorization: `Bearer ${ADMIN_TOKEN}` };
const ASSET = "/assets/app-Ab3dE_f9.js";
const STYLE = "/assets/index-Zy8xW-v7.css";
// Real script text, long enough that brotli and gzip both pay off.
const SCRIPT = Array.from(
  { length: 200 },
  (_, i) => `export function row${i}(task) { return { id: task.id, title: String(task.title), n: ${i} }; }\n`,
).join("");
const INDEX = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Agent Agency</title>
<script type="module" crossorigin src="${ASSET}"></script><link rel="stylesheet" crossorigin href="${STYLE}">
</head><body><div id="root"></div></body></html>\n`;

/** A built console as `npm run build` leaves it: hashed assets, their .br/.gz twins, source maps moved out. */
function buildConsole(): { dir: string; mapsDir: string } {
  const root = mkdtempSync(path.join(os.tmpdir(), "agency-headers-"));
  const dir = path.join(root, "web");
  const mapsDir = path.join(root, "sourcemaps");
  mkdirSync(path.join(dir, "assets"), { recursive: true });
  writeFileSync(path.join(dir, "index.html"), INDEX.repeat(1));
  writeFileSync(path.join(dir, ASSET), SCRIPT);
  writeFileSync(path.join(dir, `${ASSET}.map`), JSON.stringify({ version: 3, sources: ["src/app.ts"], mappings: "" }));
  writeFileSync(path.join(dir, STYLE), "body { color: #1f2328; }\n".repeat(80));
  writeFileSync(path.join(dir, "favicon.svg"), '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"/>');
  expect(moveSourceMaps(dir, mapsDir)).toEqual([`${ASSET.slice(1)}.map`]);
  precompress(dir);
  // A map a careless deploy copied back next to the scripts: still not served.
  writeFileSync(path.join(dir, "assets/stray-Qw3rTy12.js.map"), '{"version":3,"sources":["secret.ts"]}');
  return { dir, mapsDir };
}

function expectSecurityHeaders(a: Answer, what: string) {
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
    expect(a.headers[name.toLowerCase()], `${what}: ${name}`).toBe(value);
  }
  expect(a.headers["permissions-policy"], what).toMatch(/camera=\(\).*geolocation=\(\).*microphone=\(\)/);
  expect(a.headers["strict-transport-security"], `${what}: no HSTS over plain HTTP`).toBeUndefined();
}

describe.each(DATABASES)("HTTP answers on %s", (kind) => {
  let s: EngineApp;
  let worker: FaultWorker;
  let built: { dir: string; mapsDir: string };

  beforeAll(async () => {
    built = buildConsole();
    worker = await startFaultWorker({ durationMs: 20 });
    s = await startEngineApp(kind, { WEB_DIST_DIR: built.dir });
    await s.http.workers.register.mutate({ name: "w", url: worker.url, capabilities: ["script"], maxConcurrency: 2 });
  }, 60_000);
  afterAll(async () => {
    await s?.stop();
    await worker?.close();
    if (built) rmSync(path.dirname(built.dir), { recursive: true, force: true });
  });

  it("sends the security headers on every route family, and no-store on API answers", async () => {
    const noStore: [string, Answer][] = [
      ["/healthz", await request(s.url, "/healthz")],
      ["/readyz", await request(s.url, "/readyz")],
      ["/metrics", await request(s.url, "/metrics", { headers: bearer })],
      ["/metrics without a token", await request(s.url, "/metrics")],
      ["/trpc query", await request(s.url, "/trpc/tasks.list?input=%7B%22json%22%3A%7B%7D%7D", { headers: bearer })],
      ["/trpc refused", await request(s.url, "/trpc/tasks.list?input=%7B%22json%22%3A%7B%7D%7D")],
      ["/trpc unknown", await request(s.url, "/trpc/no.such", { headers: bearer })],
      ["/provenance/checkpoint", await request(s.url, "/provenance/checkpoint", { headers: bearer })],
    ];
    for (const [what, a] of noStore) {
      expectSecurityHeaders(a, what);
      expect(a.headers["cache-control"], what).toBe("no-store");
      expect(a.headers["content-security-policy"], what).toBe("default-src 'none'; frame-ancestors 'none'");
    }
    expect(noStore[0]?.[1].status).toBe(200);
    expect(noStore[2]?.[1].status).toBe(200);
    expect(noStore[3]?.[1].status).toBe(401);
    expect(noStore[4]?.[1].status).toBe(200);
    expect(noStore[5]?.[1].status).toBe(401);

    const others: [string, Answer][] = [
      ["/provenance/public-key", await request(s.url, "/provenance/public-key")],
      ["/.well-known/agent-card.json", await request(s.url, "/.well-known/agent-card.json")],
      [
        "/a2a",
        await request(s.url, "/a2a", {
          method: "POST",
          headers: { ...bearer, "content-type": "application/json" },
          body: "{}",
        }),
      ],
      [
        "/mcp",
        await request(s.url, "/mcp", {
          method: "POST",
          headers: { ...bearer, "content-type": "application/json", accept: "application/json, text/event-stream" },
          body: "{}",
        }),
      ],
      ["console page", await request(s.url, "/tasks")],
      ["console asset", await request(s.url, ASSET)],
      ["missing asset", await request(s.url, "/assets/missing-Zz9yYx87.js")],
    ];
    for (const [what, a] of others) expectSecurityHeaders(a, what);
    expect(others[0]?.[1].status).toBe(200);
  });

  it("serves hashed assets immutable, brotli or gzip as accepted, with Vary", async () => {
    const br = await request(s.url, ASSET, { headers: { "accept-encoding": "gzip, deflate, br" } });
    expect(br.status).toBe(200);
    expect(br.headers["content-encoding"]).toBe("br");
    expect(br.headers["content-type"]).toMatch(/^text\/javascript/);
    expect(br.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    expect(br.headers.vary).toMatch(/Accept-Encoding/i);
    expect(br.body.length).toBeLessThan(Buffer.byteLength(SCRIPT) / 3);
    expect(brotliDecompressSync(br.body).toString()).toBe(SCRIPT);

    const gz = await request(s.url, ASSET, { headers: { "accept-encoding": "gzip" } });
    expect(gz.headers["content-encoding"]).toBe("gzip");
    expect(gz.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    expect(gunzipSync(gz.body).toString()).toBe(SCRIPT);

    const plain = await request(s.url, ASSET);
    expect(plain.headers["content-encoding"]).toBeUndefined();
    expect(plain.headers.vary).toMatch(/Accept-Encoding/i);
    expect(plain.body.toString()).toBe(SCRIPT);

    const css = await request(s.url, STYLE, { headers: { "accept-encoding": "br" } });
    expect(css.headers["content-encoding"]).toBe("br");
    expect(css.headers["content-type"]).toMatch(/^text\/css/);
    expect(css.headers["cache-control"]).toBe("public, max-age=31536000, immutable");

    const missing = await request(s.url, "/assets/missing-Zz9yYx87.js", { headers: { "accept-encoding": "br" } });
    expect(missing.status).toBe(404);
    expect(missing.headers["cache-control"]).toBe("no-store");
  });

  it("serves index.html (every console route) as no-cache, revalidated by ETag, under a CSP without unsafe-inline", async () => {
    for (const route of ["/", "/tasks", "/tasks/abc", "/live-metrics"]) {
      const a = await request(s.url, route, { headers: { "accept-encoding": "br, gzip" } });
      expect(a.status, route).toBe(200);
      expect(a.headers["content-type"], route).toMatch(/^text\/html/);
      expect(a.headers["cache-control"], route).toBe("no-cache");
      expect(a.headers["content-encoding"], route).toBe("br");
      expect(brotliDecompressSync(a.body).toString(), route).toBe(INDEX);
      const csp = a.headers["content-security-policy"] as string;
      expect(csp, route).toContain("style-src 'self';");
      expect(csp, route).not.toContain("unsafe-inline");
      expect(csp, route).toContain("script-src 'self';");
    }
    const first = await request(s.url, "/tasks");
    const etag = first.headers.etag as string;
    expect(etag).toBeTruthy();
    const again = await request(s.url, "/tasks", { headers: { "if-none-match": etag } });
    expect(again.status).toBe(304);
    expect(again.headers["cache-control"]).toBe("no-cache");
    const icon = await request(s.url, "/favicon.svg");
    expect(icon.headers["cache-control"]).toBe("no-cache");
  });

  it("serves no source map: the build moves them out, and one left behind is refused", async () => {
    expect(existsSync(path.join(built.dir, `${ASSET}.map`))).toBe(false);
    expect(existsSync(path.join(built.mapsDir, `${ASSET}.map`))).toBe(true);
    for (const p of [`${ASSET}.map`, "/assets/stray-Qw3rTy12.js.map"]) {
      const a = await request(s.url, p, { headers: { "accept-encoding": "br, gzip" } });
      expect(a.status, p).toBe(404);
      expect(a.body.toString(), p).not.toContain("sources");
    }
  });

  it("tells the browser to clear cookies and storage on sign-out, and only then", async () => {
    const signIn = await fetch(`${s.url}/trpc/auth.signIn`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ json: { username: "admin", password: "execution-tests-password" } }),
    });
    expect(signIn.status).toBe(200);
    expect(signIn.headers.get("clear-site-data")).toBeNull();
    expect(signIn.headers.get("cache-control")).toBe("no-store");
    const cookie = (signIn.headers.get("set-cookie") ?? "").split(";")[0] as string;
    const me = await fetch(`${s.url}/trpc/auth.me`, { headers: { cookie } });
    expect(me.headers.get("clear-site-data")).toBeNull();
    expect(await me.text()).toContain('"username":"admin"');

    const signOut = await fetch(`${s.url}/trpc/auth.signOut`, {
      method: "POST",
      headers: { "content-type": "application/json", cookie, origin: s.url },
      body: JSON.stringify({ json: null }),
    });
    expect(signOut.status).toBe(200);
    expect(signOut.headers.get("clear-site-data")).toBe('"cookies", "storage"');
    expect(signOut.headers.get("set-cookie")).toMatch(/^agency_session=; .*Max-Age=0/);
    expect(await (await fetch(`${s.url}/trpc/auth.me`, { headers: { cookie } })).text()).toContain('"json":null');
  });

  it("exports queue wait and execution as histograms, and each tRPC procedure's latency", async () => {
    const task = await s.http.tasks.create.mutate({ title: "measured" });
    await waitFor(
      "the task to finish",
      () => s.db.prisma.task.findUniqueOrThrow({ where: { id: task.id } }),
      (t) => t.state === "accepted" || t.state === "failed",
      60_000,
    );
    await s.services.metrics.settle();
    for (let i = 0; i < 3; i++) await s.http.tasks.list.query({});
    // A refused call is timed too, under its error code.
    await request(s.url, "/trpc/tasks.list?input=%7B%22json%22%3A%7B%7D%7D");

    const text = (await request(s.url, "/metrics", { headers: bearer })).body.toString();
    expect(text).toContain("# TYPE agency_queue_wait_seconds histogram");
    expect(text).toContain("# TYPE agency_execution_seconds histogram");
    expect(text).not.toMatch(/\{quantile=/);
    const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? Number.NaN);
    expect(value(/^agency_queue_wait_seconds_count (\S+)$/m)).toBeGreaterThanOrEqual(1);
    expect(value(/^agency_queue_wait_seconds_bucket\{le="\+Inf"\} (\S+)$/m)).toBeGreaterThanOrEqual(1);
    expect(value(/^agency_execution_seconds_count (\S+)$/m)).toBeGreaterThanOrEqual(1);
    expect(value(/^agency_execution_seconds_sum (\S+)$/m)).toBeGreaterThan(0);

    expect(text).toContain("# TYPE agency_trpc_request_duration_seconds histogram");
    const listOk = value(
      /^agency_trpc_request_duration_seconds_count\{procedure="tasks\.list",type="query",code="OK"\} (\S+)$/m,
    );
    expect(listOk).toBeGreaterThanOrEqual(3);
    expect(text).toMatch(
      /^agency_trpc_request_duration_seconds_bucket\{le="0\.1",procedure="tasks\.list",type="query",code="OK"\} \d+$/m,
    );
    expect(
      value(
        /^agency_trpc_request_duration_seconds_count\{procedure="tasks\.list",type="query",code="UNAUTHORIZED"\} (\S+)$/m,
      ),
    ).toBeGreaterThanOrEqual(1);
    expect(
      value(
        /^agency_trpc_request_duration_seconds_count\{procedure="tasks\.create",type="mutation",code="OK"\} (\S+)$/m,
      ),
    ).toBe(1);
  });
});

describe("Strict-Transport-Security", () => {
  let trusting: RunningApp;
  let plain: RunningApp;
  beforeAll(async () => {
    trusting = await startApp("pglite", { TRUST_PROXY: "1", HSTS_MAX_AGE_SECONDS: "63072000" });
    plain = await startApp("pglite");
  }, 60_000);
  afterAll(async () => {
    await trusting?.stop();
    await plain?.stop();
  });

  it("is sent when a trusted proxy says the request came over HTTPS, on every route", async () => {
    for (const p of ["/healthz", "/metrics", "/trpc/auth.me", "/tasks"]) {
      const viaProxy = await request(trusting.url, p, { headers: { "x-forwarded-proto": "https" } });
      expect(viaProxy.headers["strict-transport-security"], p).toBe("max-age=63072000");
      const direct = await request(trusting.url, p, { headers: { "x-forwarded-proto": "http" } });
      expect(direct.headers["strict-transport-security"], p).toBeUndefined();
    }
  });

  it("is not sent on a proxy's word when no proxy is trusted", async () => {
    const a = await request(plain.url, "/healthz", { headers: { "x-forwarded-proto": "https" } });
    expect(a.headers["strict-transport-security"]).toBeUndefined();
    expect(a.headers["x-content-type-options"]).toBe("nosniff");
  });

  it("takes the scheme from X-Forwarded-Proto for the session cookie, the Origin check and the Agent Card only behind a trusted proxy", async () => {
    const setup: Actor = { kind: "system", id: "test-setup", name: "test setup", role: "admin" };
    for (const app of [trusting, plain]) {
      await app.services.auth.createUser(
        { actor: setup },
        { username: "proxied", role: "operator", password: "proxied password 1" },
      );
    }
    const host = (app: RunningApp) => new URL(app.url).host;
    // What a TLS-terminating proxy forwards for a page served as https://<host>.
    const signIn = (app: RunningApp) =>
      fetch(`${app.url}/trpc/auth.signIn`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-forwarded-proto": "https",
          origin: `https://${host(app)}`,
        },
        body: JSON.stringify({ json: { username: "proxied", password: "proxied password 1" } }),
      });
    const behindTrusted = await signIn(trusting);
    expect(behindTrusted.status).toBe(200);
    expect(behindTrusted.headers.get("set-cookie")).toMatch(/; Secure$/);
    // Untrusted, the request's own origin is http://<host>: an https Origin is another origin (login CSRF refused).
    const untrusted = await signIn(plain);
    expect(untrusted.status).toBe(403);
    expect(untrusted.headers.get("set-cookie")).toBeNull();

    const cardOrigin = async (app: RunningApp) =>
      (
        (await (
          await fetch(`${app.url}/.well-known/agent-card.json`, { headers: { "x-forwarded-proto": "https" } })
        ).json()) as { provider: { url: string } }
      ).provider.url;
    expect(await cardOrigin(trusting)).toBe(`https://${host(trusting)}`);
    expect(await cardOrigin(plain)).toBe(`http://${host(plain)}`);
  });
});

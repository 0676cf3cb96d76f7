import type http from "node:http";
import { cameOverHttps } from "../serving/headers.js";
import { readCookie, SESSION_COOKIE } from "./cookies.js";

export interface OriginSettings {
  /** The console's public address (scheme://host[:port]) when it differs from what the Host header says (a proxy). */
  PUBLIC_URL?: string | undefined;
  /** Further origins whose pages may use the session cookie (another console, a dev server on another port). */
  ALLOWED_ORIGINS: string[];
  /** Believe a proxy's X-Forwarded-Proto when working out the request's own origin. */
  TRUST_PROXY?: boolean;
}

/** Why a request was refused, for the 403 body: says what to do, not what we compared. */
export type OriginVerdict = { ok: true } | { ok: false; reason: string };

const header = (req: http.IncomingMessage, name: string): string | undefined => {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
};

/** `scheme://host[:port]` in the form browsers put in the Origin header (lower-case, default port dropped). */
export function normalizeOrigin(value: string): string | null {
  try {
    const u = new URL(value);
    if (u.protocol !== "http:" && u.protocol !== "https:") return null;
    return u.origin;
  } catch {
    return null;
  }
}

/**
 * Decides whether a browser page at the request's Origin may act with the session cookie.
 *
 * The server's own origin is taken from the Host header (with the scheme the connection or the proxy
 * reports) or from PUBLIC_URL. Host is chosen by the client, but only a non-browser client can lie in
 * it, and such a client does not hold the victim's cookie: a browser sends the cookie only to the host
 * it set it for, and then Host is that host. A DNS-rebinding page (evil.example resolving to us) gets
 * Host = Origin = evil.example, and no cookie of ours with it. So "Origin equals the Host's origin"
 * admits exactly the pages served by this server, and refuses sibling ports and subdomains, which
 * SameSite=Strict lets through because they are the same *site*.
 */
export class OriginPolicy {
  private readonly allowed: Set<string>;
  private readonly trustProxy: boolean;

  constructor(settings: OriginSettings) {
    this.trustProxy = settings.TRUST_PROXY ?? false;
    this.allowed = new Set(
      [...(settings.PUBLIC_URL ? [settings.PUBLIC_URL] : []), ...settings.ALLOWED_ORIGINS]
        .map(normalizeOrigin)
        .filter((o): o is string => o !== null),
    );
  }

  /** The origins a request from `req` may come from: its own (Host) plus the configured ones. */
  private allows(origin: string, req: http.IncomingMessage): boolean {
    const normalized = normalizeOrigin(origin);
    if (!normalized) return false; // "null" (sandboxed frames, file://) and anything malformed
    if (this.allowed.has(normalized)) return true;
    const host = header(req, "host");
    if (!host) return false;
    const scheme = cameOverHttps(req, this.trustProxy) ? "https" : "http";
    return normalizeOrigin(`${scheme}://${host}`) === normalized;
  }

  /**
   * Which requests are judged: those the session cookie would authenticate. A bearer token wins over
   * the cookie in resolveActor, and a page on another origin cannot attach one (that needs a CORS
   * preflight this server never approves), so token calls pass whatever their Origin.
   */
  static usesSessionCookie(req: http.IncomingMessage): boolean {
    if (/^Bearer\s+\S+$/i.test(header(req, "authorization") ?? "")) return false;
    return readCookie(header(req, "cookie"), SESSION_COOKIE) !== undefined;
  }

  /**
   * An HTTP request to a cookie-authenticated endpoint. Browsers send Origin with every POST (same
   * origin included) and with cross-origin fetches; a same-origin GET may come without one. So: an
   * Origin must be ours; without one, a cookie request must be a GET/HEAD, and if the browser says
   * (Sec-Fetch-Site) that another site or a sibling origin made it, it is refused too. Sign-in carries
   * no cookie yet but sets one, so a foreign Origin is refused there as well (login CSRF).
   */
  checkHttp(req: http.IncomingMessage, opts: { setsSession?: boolean } = {}): OriginVerdict {
    const cookie = OriginPolicy.usesSessionCookie(req);
    if (!cookie && !opts.setsSession) return { ok: true };
    const origin = header(req, "origin");
    if (origin !== undefined) {
      return this.allows(origin, req)
        ? { ok: true }
        : {
            ok: false,
            reason: `Requests with the session cookie are accepted only from this server's own pages; ${clip(origin)} is not one of them (an admin can add it to ALLOWED_ORIGINS). Automation should use an API token.`,
          };
    }
    if (!cookie) return { ok: true };
    const method = (req.method ?? "GET").toUpperCase();
    if (method !== "GET" && method !== "HEAD") {
      return {
        ok: false,
        reason:
          "A request that changes something with the session cookie must carry an Origin header (browsers send it); automation should use an API token.",
      };
    }
    const site = header(req, "sec-fetch-site");
    if (site && site !== "same-origin" && site !== "none") {
      return { ok: false, reason: "Requests with the session cookie are accepted only from this server's own pages." };
    }
    return { ok: true };
  }

  /**
   * An endpoint for token-authenticated programs (MCP at /mcp), where the Model Context Protocol requires
   * every request's Origin to be checked (DNS rebinding): whatever the credentials, a request that carries
   * an Origin must come from this server's own pages or an allowed origin. Programs send no Origin.
   */
  checkOrigin(req: http.IncomingMessage): OriginVerdict {
    const origin = header(req, "origin");
    if (origin === undefined || this.allows(origin, req)) return { ok: true };
    return {
      ok: false,
      reason: `Requests from web pages are accepted only from this server's own pages; ${clip(origin)} is not one of them (an admin can add it to ALLOWED_ORIGINS).`,
    };
  }

  /**
   * A WebSocket upgrade. Browsers always send Origin on one, and the socket's actor comes from the
   * cookie when the client sends no token, so an upgrade carrying the cookie must come from our origin.
   * Without the cookie the socket can only authenticate with a token in connectionParams (or stay
   * anonymous), which a foreign page cannot borrow from the victim.
   */
  checkUpgrade(req: http.IncomingMessage): OriginVerdict {
    if (!OriginPolicy.usesSessionCookie(req)) return { ok: true };
    const origin = header(req, "origin");
    if (origin !== undefined && this.allows(origin, req)) return { ok: true };
    return {
      ok: false,
      reason:
        origin === undefined
          ? "A WebSocket with the session cookie must carry an Origin header; automation should use an API token in connectionParams."
          : `WebSockets with the session cookie are accepted only from this server's own pages; ${clip(origin)} is not one of them (an admin can add it to ALLOWED_ORIGINS).`,
    };
  }
}

const clip = (s: string) => JSON.stringify(s.slice(0, 200));

import { createHash, timingSafeEqual } from "node:crypto";
import type http from "node:http";
import type { Duplex } from "node:stream";
import type { OriginPolicy, OriginVerdict } from "./origin.js";
import type { AuthService } from "./service.js";

/**
 * The checks the HTTP server makes before a request reaches a procedure or a route: the Origin of
 * cookie-authenticated requests and WebSocket upgrades, and the token /metrics needs.
 */
export class WebBoundary {
  private readonly metricsTokenDigest: Buffer | null;

  constructor(
    private readonly origins: OriginPolicy,
    private readonly auth: AuthService,
    metricsToken: string | undefined,
  ) {
    this.metricsTokenDigest = metricsToken ? sha256(metricsToken) : null;
  }

  /** True when the request may go on; otherwise a 403 has been sent. */
  admitHttp(req: http.IncomingMessage, res: http.ServerResponse, pathname: string): boolean {
    const setsSession = pathname.startsWith("/trpc/") && pathname.slice(6).split(",").includes("auth.signIn");
    const verdict = this.origins.checkHttp(req, { setsSession });
    if (verdict.ok) return true;
    refuseHttp(res, verdict, pathname.startsWith("/trpc"));
    return false;
  }

  /** True when the upgrade may go on; otherwise the socket got a 403 and was closed. */
  admitUpgrade(req: http.IncomingMessage, socket: Duplex): boolean {
    const verdict = this.origins.checkUpgrade(req);
    if (verdict.ok) return true;
    const body = `${verdict.reason}\n`;
    socket.end(
      "HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n" +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    return false;
  }

  /**
   * /metrics lists workers, capabilities and breaker states, so it needs a bearer token: METRICS_TOKEN
   * (for a scraper that should hold no user's token) or any user's API token (every role may read it).
   */
  async metricsAccess(req: http.IncomingMessage): Promise<"ok" | "unauthorized"> {
    const auth = req.headers.authorization;
    const bearer = /^Bearer\s+(\S+)$/i.exec(Array.isArray(auth) ? (auth[0] ?? "") : (auth ?? ""))?.[1];
    if (!bearer) return "unauthorized";
    if (this.metricsTokenDigest && timingSafeEqual(sha256(bearer), this.metricsTokenDigest)) return "ok";
    const actor = await this.auth.resolveActor({ authorizationHeader: `Bearer ${bearer}` });
    return actor ? "ok" : "unauthorized";
  }
}

export function refuseMetrics(res: http.ServerResponse): void {
  res.writeHead(401, {
    "Content-Type": "text/plain; charset=utf-8",
    "Cache-Control": "no-store",
    "WWW-Authenticate": 'Bearer realm="metrics"',
  });
  res.end("GET /metrics needs Authorization: Bearer <METRICS_TOKEN or an API token>.\n");
}

function refuseHttp(res: http.ServerResponse, verdict: Exclude<OriginVerdict, { ok: true }>, trpc: boolean): void {
  res.writeHead(403, { "Content-Type": "application/json", "Cache-Control": "no-store" });
  // In tRPC's error shape (superjson-wrapped) so the console's client shows the message.
  const body = trpc
    ? { error: { json: { message: verdict.reason, code: -32003, data: { code: "FORBIDDEN", httpStatus: 403 } } } }
    : { error: verdict.reason };
  res.end(JSON.stringify(body));
}

const sha256 = (s: string) => createHash("sha256").update(s, "utf8").digest();

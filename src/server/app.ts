import { existsSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import type { Duplex } from "node:stream";
import type { TRPCError } from "@trpc/server";
import { createHTTPHandler } from "@trpc/server/adapters/standalone";
import { applyWSSHandler } from "@trpc/server/adapters/ws";
import { WebSocket, WebSocketServer } from "ws";
import { createA2aHttp } from "./a2a/http.js";
import { AUDIT_EXPORT_PATH, exportAuditCsv } from "./audit/http.js";
import { refuseMetrics, WebBoundary } from "./auth/boundary.js";
import { OriginPolicy } from "./auth/origin.js";
import { requestContext } from "./auth/request.js";
import { SignInDelayedError } from "./auth/service.js";
import { SocketGuard } from "./auth/socket-guard.js";
import type { Config } from "./config.js";
import { errorIdOf, hidesDetail } from "./lib/public-errors.js";
import { sharedFrameEncoder } from "./lib/shared-serialization.js";
import type { Logger } from "./logger.js";
import { createMcpHandler } from "./mcp/http.js";
import { handleProvenanceHttp } from "./provenance/http.js";
import { appRouter } from "./router.js";
import type { Services } from "./services.js";
import { applySecurityHeaders, CLEAR_SITE_DATA, CONSOLE_CSP } from "./serving/headers.js";
import { consoleFiles } from "./serving/static.js";
import { handleTaskLogHttp } from "./tasks/log-http.js";
import type { Context } from "./trpc.js";

type Middleware = (req: http.IncomingMessage, res: http.ServerResponse, next: () => void) => void;

export interface AppOptions {
  config: Config;
  log: Logger;
  services: Services;
}

export interface App {
  server: http.Server;
  /** Serves the console through this middleware (Vite's, in `npm run dev`) instead of the built files. */
  serveWebWith(middleware: Middleware): void;
  /** Stops accepting, tells WebSocket clients to reconnect, closes connections. Does not close the database. */
  close(): Promise<void>;
}

function sendJson(res: http.ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { "Content-Type": "application/json", "Cache-Control": "no-store" });
  res.end(JSON.stringify(body));
}

export function createApp({ config, log, services }: AppOptions): App {
  const socketGuard = new SocketGuard(services.auth);
  const boundary = new WebBoundary(new OriginPolicy(config), services.auth, config.METRICS_TOKEN);
  const mcp = createMcpHandler({ config, log, services });
  // The agency as an A2A agent: /.well-known/agent-card.json and the JSON-RPC endpoint /a2a (src/server/a2a/).
  const a2a = createA2aHttp({ config, log, services, boundary });
  // Every request and every WebSocket connection is resolved to an actor (or none): session cookie,
  // bearer API token, or a token in the WebSocket's connectionParams. Roles are checked per procedure.
  const createContext = async ({
    req,
    res,
    info,
  }: {
    req: http.IncomingMessage;
    res?: unknown;
    info?: { connectionParams?: Record<string, string | undefined> | null };
  }): Promise<Context> => {
    const request = requestContext(
      req,
      res instanceof http.ServerResponse ? res : undefined,
      info?.connectionParams ?? null,
      config.TRUST_PROXY,
    );
    const caller = await services.auth.resolveCaller(request.credentials);
    const actor = caller?.actor ?? null;
    if (actor && res instanceof WebSocket)
      socketGuard.watch(res, request.credentials, actor, caller?.passwordChangeRequired ?? false);
    return {
      actor,
      passwordChangeRequired: caller?.passwordChangeRequired ?? false,
      services,
      clientAddress: req.socket.remoteAddress ?? null,
      request,
    };
  };

  // The detail of an error the client is not told (trpc.ts), under the id the client is given.
  const logHiddenError = ({ error, path: procedure }: { error: TRPCError; path?: string | undefined }) => {
    if (hidesDetail(error)) log.error({ err: error, procedure, errorId: errorIdOf(error) }, "procedure failed");
  };

  const trpcHandler = createHTTPHandler({
    router: appRouter,
    basePath: "/trpc/",
    maxBodySize: config.MAX_BODY_BYTES,
    createContext,
    responseMeta: ({ errors, paths }) => {
      const delayed = errors.find((e) => e instanceof SignInDelayedError);
      if (delayed instanceof SignInDelayedError)
        return { headers: { "Retry-After": String(Math.ceil(delayed.retryAfterMs / 1000)) } };
      // Signing out also tells the browser to drop this origin's cookies and storage (cached task data, drafts).
      if (paths?.includes("auth.signOut") && errors.length === 0)
        return { headers: { "Clear-Site-Data": CLEAR_SITE_DATA } };
      return {};
    },
    onError: logHiddenError,
  });

  const webDir = path.resolve(config.WEB_DIST_DIR);
  let web: Middleware | undefined = existsSync(path.join(webDir, "index.html")) ? consoleFiles(webDir) : undefined;

  const server = http.createServer((req, res) => {
    // Every answer, whichever route (or later addition) writes it, starts with the security headers.
    applySecurityHeaders(req, res, { trustProxy: config.TRUST_PROXY, hstsMaxAgeSeconds: config.HSTS_MAX_AGE_SECONDS });
    const url = req.url ?? "/";
    const pathname = url.split("?")[0] ?? "/";
    if (pathname === "/healthz") return sendJson(res, 200, { status: "ok" });
    if (pathname === "/readyz") {
      services.system
        .readiness()
        .then((r) => {
          if (r.error) log.warn({ err: r.error }, "readiness: the database did not answer");
          sendJson(res, r.ready ? 200 : 503, r.ready ? { status: "ready" } : { status: "unready", reason: r.reason });
        })
        .catch((err: Error) => {
          log.error({ err }, "readiness check failed");
          sendJson(res, 503, { status: "unready", reason: "the readiness check failed; see the server log" });
        });
      return;
    }
    if (pathname === "/metrics" && req.method === "GET") {
      boundary
        .metricsAccess(req)
        .then((access) => {
          if (access !== "ok") {
            refuseMetrics(res);
            return null;
          }
          return services.metrics.prometheus();
        })
        .then((m) => {
          if (!m) return;
          res.writeHead(200, { "Content-Type": m.contentType, "Cache-Control": "no-store" });
          res.end(m.body);
        })
        .catch((err: Error) => {
          log.error({ err }, "serving /metrics failed");
          res.writeHead(503, { "Content-Type": "text/plain" });
          res.end("Metrics unavailable; the server's log has the detail.\n");
        });
      return;
    }
    if (pathname === "/mcp") return mcp(req, res);
    if (pathname === "/trpc" || pathname.startsWith("/trpc/")) {
      if (!boundary.admitHttp(req, res, pathname)) return;
      return trpcHandler(req, res);
    }
    if (a2a.handle(req, res, pathname)) return;
    if (pathname.startsWith("/download/tasks/")) {
      if (!boundary.admitHttp(req, res, pathname)) return;
      const handled = handleTaskLogHttp(req, res, pathname, {
        db: services.db,
        actorFor: (r) => services.auth.resolveActor(requestContext(r, undefined).credentials),
      });
      if (handled) return;
    }
    if (pathname === AUDIT_EXPORT_PATH) {
      if (!boundary.admitHttp(req, res, pathname)) return;
      void exportAuditCsv(req, res, {
        audit: services.audit,
        auth: services.auth,
        credentials: (r) => requestContext(r, undefined).credentials,
        log,
      });
      return;
    }
    if (pathname.startsWith("/provenance/")) {
      if (!boundary.admitHttp(req, res, pathname)) return;
      const handled = handleProvenanceHttp(req, res, {
        provenance: services.provenance,
        actorFor: (r) => services.auth.resolveActor(requestContext(r, undefined).credentials),
      });
      if (handled) return;
    }
    // Not in DEV, where Vite injects an inline preamble for hot reload.
    if (config.DEV) res.removeHeader("Content-Security-Policy");
    else res.setHeader("Content-Security-Policy", CONSOLE_CSP);
    if (!web) {
      res.writeHead(404, { "Content-Type": "text/plain" });
      res.end("The console is not built. Run `npm run build` (or `npm start`).\n");
      return;
    }
    web(req, res, () => {
      res.writeHead(404, { "Content-Type": "text/plain" });
      res.end("Not found\n");
    });
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: config.MAX_BODY_BYTES });
  // Registered before the tRPC handler so every send the adapter makes goes through the cap.
  wss.on("connection", (ws: WebSocket, req: http.IncomingMessage) =>
    capBufferedBytes(ws, config.WS_MAX_BUFFERED_BYTES, () => {
      log.warn(
        {
          client: `${req.socket.remoteAddress ?? "unknown"}:${req.socket.remotePort ?? "?"}`,
          limit: config.WS_MAX_BUFFERED_BYTES,
        },
        "WebSocket client is not reading: dropped it over the send buffer limit (it can resume from its lastEventId)",
      );
    }),
  );
  // patches/@trpc+server+11.19.0.patch (applied by `npm install`): per subscription item this
  // handler waits on one promise instead of Unpromise.race and spreads objects natively; server CPU
  // per fanned-out chat message 104–125 → 64–80 ms (bench/RESULTS.md).
  const wsHandler = applyWSSHandler({
    wss,
    router: appRouter,
    createContext,
    experimental_encoder: sharedFrameEncoder,
    onError: logHiddenError,
    keepAlive: { enabled: true, pingMs: config.WS_PING_MS, pongWaitMs: config.WS_PONG_WAIT_MS },
  });
  server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const pathname = (req.url ?? "/").split("?")[0];
    if (pathname !== "/trpc") return; // Vite's HMR socket in dev, or nothing: left to other listeners.
    if (!boundary.admitUpgrade(req, socket)) return;
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws, req));
  });

  return {
    server,
    serveWebWith(middleware) {
      web = middleware;
    },
    async close() {
      socketGuard.stop();
      a2a.close();
      wsHandler.broadcastReconnectNotification();
      services.hub.stop();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Give clients the reconnect notification, then drop keep-alive and WebSocket connections.
        setTimeout(() => {
          for (const client of wss.clients) client.terminate();
          server.closeAllConnections();
        }, 200).unref();
      });
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

/** Close code for a client dropped over the buffer cap: "try again later" (RFC 6455 1013). */
export const WS_CLOSE_TOO_SLOW = 1013;

/**
 * Bounds what one connection may have queued and unsent. Subscriptions keep producing while a stalled
 * client reads nothing, so without a cap the server would buffer for it without limit; the client is
 * dropped instead and resumes from the last event id it saw.
 */
function capBufferedBytes(ws: WebSocket, limit: number, onDrop: () => void): void {
  const send = ws.send.bind(ws) as (data: unknown, ...rest: unknown[]) => void;
  let dropped = false;
  ws.send = ((data: unknown, ...rest: unknown[]) => {
    if (dropped) return;
    send(data, ...rest);
    if (ws.bufferedAmount <= limit || ws.readyState !== WebSocket.OPEN) return;
    dropped = true;
    onDrop();
    // The close frame queues behind data the peer is not reading, so terminate rather than wait for it.
    ws.close(WS_CLOSE_TOO_SLOW, "send buffer limit exceeded: reconnect and resume");
    ws.terminate();
  }) as WebSocket["send"];
}

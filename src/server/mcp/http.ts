import type http from "node:http";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { OriginPolicy } from "../auth/origin.js";
import { requestContext } from "../auth/request.js";
import type { Config } from "../config.js";
import type { Logger } from "../logger.js";
import { appRouter } from "../router.js";
import type { Services } from "../services.js";
import { buildMcpServer } from "./server.js";

export interface McpHandlerOptions {
  config: Pick<Config, "MAX_BODY_BYTES" | "PUBLIC_URL" | "ALLOWED_ORIGINS">;
  log: Logger;
  services: Services;
}

/** A JSON-RPC error answer outside any request (the transport's own shape for refusals). */
function refuse(res: http.ServerResponse, status: number, message: string, headers: Record<string, string> = {}) {
  res.writeHead(status, { "Content-Type": "application/json", "Cache-Control": "no-store", ...headers });
  res.end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32000, message }, id: null }));
}

/**
 * Serves the Model Context Protocol at /mcp over streamable HTTP, statelessly: each POST gets a fresh server
 * and transport acting as the caller its `Authorization: Bearer <API token>` names, and answers with JSON.
 * No session is kept, so any process behind a load balancer can serve any request. The order of checks: the
 * Origin (DNS rebinding, cross-site pages), the method, the token (401), then the transport, which refuses a
 * body over MAX_BODY_BYTES (413) before parsing it.
 */
export function createMcpHandler({ config, log, services }: McpHandlerOptions) {
  const origins = new OriginPolicy(config);
  return (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const origin = origins.checkOrigin(req);
    if (!origin.ok) {
      refuse(res, 403, origin.reason);
      return;
    }
    if (req.method !== "POST") {
      // Stateless: no session to stream server-initiated messages on (GET) or to end (DELETE).
      refuse(res, 405, "This MCP server is stateless: send JSON-RPC requests with POST.", { Allow: "POST" });
      return;
    }
    serve(req, res).catch((err: unknown) => {
      log.error({ err }, "MCP request failed");
      if (!res.headersSent) refuse(res, 500, "The MCP request failed; the server's log has the detail.");
      else res.end();
    });
  };

  async function serve(req: http.IncomingMessage, res: http.ServerResponse) {
    // The API token only: a session cookie is not accepted here, so a page elsewhere cannot borrow one.
    const request = requestContext(req, undefined);
    const caller = await services.auth.resolveCaller({ authorizationHeader: request.credentials.authorizationHeader });
    if (!caller) {
      return refuse(
        res,
        401,
        "The MCP endpoint needs Authorization: Bearer <API token> (create one from the console's user menu).",
        {
          "WWW-Authenticate": 'Bearer realm="agent-agency"',
        },
      );
    }
    const trpc = appRouter.createCaller({
      actor: caller.actor,
      passwordChangeRequired: caller.passwordChangeRequired,
      services,
      clientAddress: req.socket.remoteAddress ?? null,
      request,
    });
    const server = buildMcpServer(trpc, log);
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: true,
      maxRequestBodySize: config.MAX_BODY_BYTES,
    });
    res.on("close", () => {
      transport.close().catch(() => {});
      server.close().catch(() => {});
    });
    await server.connect(transport);
    await transport.handleRequest(req, res);
  }
}

import type http from "node:http";
import { A2A_VERSION_HEADER, AgentCard, Extensions, HTTP_EXTENSION_HEADER } from "@a2a-js/sdk";
import { A2A_LEGACY_PROTOCOL_VERSION } from "@a2a-js/sdk/compat/v0_3";
import { LegacyJsonRpcTransportHandler } from "@a2a-js/sdk/compat/v0_3/server";
import { A2A_ERROR_CODE } from "@a2a-js/sdk/errors";
import { DefaultRequestHandler, JsonRpcTransportHandler, ServerCallContext, validateVersion } from "@a2a-js/sdk/server";
import { jsonProblem, MAX_REQUEST_DEPTH } from "../../shared/text.js";
import type { WebBoundary } from "../auth/boundary.js";
import { clientInfo, requestContext } from "../auth/request.js";
import type { Config } from "../config.js";
import { newErrorId } from "../lib/public-errors.js";
import type { Logger } from "../logger.js";
import type { Services } from "../services.js";
import { AgencyUser, setRequestSignal } from "./caller.js";
import { A2A_PATH, AGENT_CARD_PATHNAME, agencyCard, publicOrigin } from "./card.js";
import { AgencyAgentExecutor } from "./executor.js";
import { AGENCY_RPC_ERROR, AgencyRequestHandler } from "./handler.js";
import { AgencyTaskStore } from "./store.js";

export interface A2aHttp {
  /** Serves the request when it is the Agent Card or the JSON-RPC endpoint; false otherwise. */
  handle(req: http.IncomingMessage, res: http.ServerResponse, pathname: string): boolean;
  /** Ends every open request's work (streams end, followers stop); on server shutdown. */
  close(): void;
}

/** How often an open stream gets an SSE comment, so proxies and clients do not take a quiet task for a dead connection. */
const SSE_KEEPALIVE_MS = 15_000;
const JSON_TYPES = ["application/json", "application/a2a+json"];

type RpcId = string | number | null;

function rpcError(res: http.ServerResponse, status: number, id: RpcId, code: number, message: string, headers = {}) {
  if (res.headersSent) return void res.end();
  res.writeHead(status, { "Content-Type": "application/json", "Cache-Control": "no-store", ...headers });
  res.end(JSON.stringify({ jsonrpc: "2.0", id, error: { code, message } }));
}

/**
 * The agency as an A2A server: its Agent Card at /.well-known/agent-card.json and the JSON-RPC endpoint
 * at /a2a (protocol 1.0, and 0.3 for clients that send no A2A-Version or 0.3), built from the SDK's
 * DefaultRequestHandler and transport handlers over the agency's tasks. Callers authenticate as on the
 * rest of the API (API token as bearer, or the console's session cookie under the same Origin policy).
 */
export function createA2aHttp(opts: {
  config: Config;
  log: Logger;
  services: Services;
  boundary: WebBoundary;
}): A2aHttp {
  const { config, log, services, boundary } = opts;
  const store = new AgencyTaskStore(services.db, services.tasks);
  const deps = { tasks: services.tasks, hub: services.hub, store };
  // The SDK's handler reads flags (streaming, push notifications, extensions) and protocol versions from
  // it; the card callers fetch is made per request (their origin, the workers enabled now).
  const handlerCard = agencyCard(config.PUBLIC_URL ? new URL(config.PUBLIC_URL).origin : "http://localhost", []);
  const inner = new DefaultRequestHandler(handlerCard, store, new AgencyAgentExecutor(deps, log));
  const handler = new AgencyRequestHandler(inner, deps, async () => handlerCard, log);
  const v1 = new JsonRpcTransportHandler(handler);
  const legacy = new LegacyJsonRpcTransportHandler(handler);
  const open = new Set<AbortController>();

  async function serveCard(req: http.IncomingMessage, res: http.ServerResponse) {
    const workers = await services.workers.list();
    const card = agencyCard(publicOrigin(req, config.PUBLIC_URL, config.TRUST_PROXY), workers);
    res.writeHead(200, {
      "Content-Type": "application/json",
      "Cache-Control": "no-cache",
      "Access-Control-Allow-Origin": "*",
    });
    res.end(req.method === "HEAD" ? undefined : JSON.stringify(AgentCard.toJSON(card)));
  }

  const tooLarge = (res: http.ServerResponse) =>
    rpcError(
      res,
      413,
      null,
      A2A_ERROR_CODE.INVALID_REQUEST,
      `The request body is over ${config.MAX_BODY_BYTES} bytes (MAX_BODY_BYTES).`,
      { Connection: "close" },
    );

  async function serveRpc(req: http.IncomingMessage, res: http.ServerResponse, signal: AbortSignal) {
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > config.MAX_BODY_BYTES) {
      return tooLarge(res);
    }
    const request = requestContext(req, undefined);
    const caller = await services.auth.resolveCaller(request.credentials);
    if (!caller) {
      return rpcError(
        res,
        401,
        null,
        AGENCY_RPC_ERROR.UNAUTHENTICATED,
        "Authenticate with an agency API token: Authorization: Bearer <token> (user menu → API tokens).",
        { "WWW-Authenticate": 'Bearer realm="a2a"' },
      );
    }
    if (caller.passwordChangeRequired) {
      return rpcError(res, 403, null, AGENCY_RPC_ERROR.FORBIDDEN, "Change your password in the console first.");
    }
    const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
    if (!JSON_TYPES.includes(type)) {
      return rpcError(
        res,
        415,
        null,
        A2A_ERROR_CODE.INVALID_REQUEST,
        `Send JSON-RPC as Content-Type: application/json (got ${JSON.stringify(type.slice(0, 100))}).`,
      );
    }
    const raw = await readBody(req, config.MAX_BODY_BYTES);
    if (raw === null) {
      return tooLarge(res);
    }
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch {
      return rpcError(res, 400, null, A2A_ERROR_CODE.PARSE_ERROR, "The request body is not valid JSON.");
    }
    const id = rpcIdOf(body);
    const problem = jsonProblem(body, { maxDepth: MAX_REQUEST_DEPTH, checkText: true });
    if (problem) {
      const where = problem.path.length ? ` at ${problem.path.join(".")}` : "";
      return rpcError(res, 400, id, A2A_ERROR_CODE.INVALID_REQUEST, `The request${where} ${problem.message}.`);
    }
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      return rpcError(
        res,
        400,
        id,
        A2A_ERROR_CODE.INVALID_REQUEST,
        "Send one JSON-RPC request object (batches are not taken).",
      );
    }

    const versionHeader = header(req, A2A_VERSION_HEADER.toLowerCase());
    const requestedVersion = versionHeader || A2A_LEGACY_PROTOCOL_VERSION;
    const useLegacy = requestedVersion === A2A_LEGACY_PROTOCOL_VERSION;
    const mapError = useLegacy
      ? LegacyJsonRpcTransportHandler.mapToLegacyJSONRPCError
      : JsonRpcTransportHandler.mapToJSONRPCError;
    try {
      validateVersion(requestedVersion, handlerCard, "JSONRPC");
    } catch (err) {
      return rpcError(res, 400, id, A2A_ERROR_CODE.VERSION_NOT_SUPPORTED, mapError(err).message);
    }
    const context = new ServerCallContext({
      user: new AgencyUser(caller.actor, clientInfo(req.socket.remoteAddress ?? null, request)),
      requestedVersion,
      requestedExtensions: Extensions.parseServiceParameter(header(req, HTTP_EXTENSION_HEADER.toLowerCase())),
    });
    setRequestSignal(context, signal);
    const answer = await (useLegacy ? legacy : v1).handle(body as Record<string, unknown>, context);
    if (!isAsyncIterable(answer)) {
      res.writeHead(200, { "Content-Type": "application/json", "Cache-Control": "no-store" });
      res.end(JSON.stringify(answer));
      return;
    }
    const events = answer[Symbol.asyncIterator]();
    let first: IteratorResult<unknown>;
    try {
      first = await events.next();
    } catch (err) {
      return rpcError(res, 200, id, mapError(err).code, mapError(err).message);
    }
    res.writeHead(200, {
      "Content-Type": "text/event-stream",
      "Cache-Control": "no-cache",
      Connection: "keep-alive",
      "X-Accel-Buffering": "no",
    });
    const keepAlive = setInterval(() => res.write(": keep-alive\n\n"), SSE_KEEPALIVE_MS);
    signal.addEventListener("abort", () => void events.return?.(undefined), { once: true });
    try {
      for (let next = first; !next.done && !signal.aborted; next = await events.next()) {
        res.write(`data: ${JSON.stringify(next.value)}\n\n`);
      }
    } catch (err) {
      res.write(`event: error\ndata: ${JSON.stringify({ jsonrpc: "2.0", id, error: mapError(err) })}\n\n`);
    } finally {
      clearInterval(keepAlive);
      res.end();
    }
  }

  return {
    handle(req, res, pathname) {
      if (pathname === AGENT_CARD_PATHNAME) {
        if (req.method !== "GET" && req.method !== "HEAD") {
          res.writeHead(405, { Allow: "GET, HEAD", "Content-Type": "text/plain" });
          res.end("The Agent Card is read with GET.\n");
          return true;
        }
        serveCard(req, res).catch((err: Error) => {
          const errorId = newErrorId();
          log.error({ err, errorId }, "serving the Agent Card failed");
          if (!res.headersSent) res.writeHead(503, { "Content-Type": "text/plain" });
          res.end(`The Agent Card is unavailable (error ${errorId}); the server's log has the detail.\n`);
        });
        return true;
      }
      if (pathname !== A2A_PATH) return false;
      if (req.method !== "POST") {
        res.writeHead(405, { Allow: "POST", "Content-Type": "text/plain" });
        res.end(
          "The A2A endpoint takes JSON-RPC requests by POST; its Agent Card is at /.well-known/agent-card.json.\n",
        );
        return true;
      }
      if (!boundary.admitHttp(req, res, pathname)) return true;
      const controller = new AbortController();
      open.add(controller);
      // The work done for a request (following its task) lasts as long as the request: its client may
      // go away, and the task goes on in the agency whatever happens to this connection.
      res.once("close", () => {
        controller.abort();
        open.delete(controller);
      });
      serveRpc(req, res, controller.signal).catch((err: Error) => {
        const errorId = newErrorId();
        log.error({ err, errorId }, "A2A request failed");
        rpcError(
          res,
          500,
          null,
          A2A_ERROR_CODE.INTERNAL_ERROR,
          `Internal error ${errorId}: the server's log has the detail under this id.`,
        );
      });
      return true;
    },
    close() {
      for (const c of open) c.abort();
      open.clear();
    },
  };
}

function header(req: http.IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function rpcIdOf(body: unknown): RpcId {
  if (typeof body !== "object" || body === null || !("id" in body)) return null;
  const id = (body as { id: unknown }).id;
  return typeof id === "string" || typeof id === "number" ? id : null;
}

function isAsyncIterable(v: unknown): v is AsyncIterable<unknown> {
  return typeof v === "object" && v !== null && Symbol.asyncIterator in v;
}

/** The body as text, or null once it passes `max` bytes (then the rest is not read). */
function readBody(req: http.IncomingMessage, max: number): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        req.removeAllListeners("data");
        req.resume();
        resolve(null);
        return;
      }
      chunks.push(chunk);
    });
    req.once("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.once("error", reject);
  });
}

import type http from "node:http";
import type { ClientInfo } from "../audit/service.js";
import { cameOverHttps } from "../serving/headers.js";
import type { TraceCarrier } from "../telemetry/tracing.js";
import type { Credentials } from "./service.js";

/** What a procedure may need to know about the request beyond the actor: its credentials and the response's cookie. */
export interface RequestContext {
  credentials: Credentials;
  userAgent: string | null;
  /** The connection is HTTPS (directly or, by the proxy's word, before it): the session cookie gets `Secure`. */
  secure: boolean;
  /** Present over HTTP only; a WebSocket message cannot set a cookie. */
  setCookie?: (cookie: string) => void;
  /**
   * The caller's W3C trace context (`traceparent`, `tracestate`), over HTTP only: a WebSocket's upgrade
   * request is not the request of the messages sent over it.
   */
  trace?: TraceCarrier;
}

export function requestContext(
  req: http.IncomingMessage,
  res: http.ServerResponse | undefined,
  connectionParams?: Record<string, unknown> | null,
  /** Believe a proxy's X-Forwarded-Proto (TRUST_PROXY): the session cookie is then marked Secure behind it. */
  trustProxy = false,
): RequestContext {
  const header = (name: string) => {
    const v = req.headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const secure = cameOverHttps(req, trustProxy);
  return {
    credentials: {
      cookieHeader: header("cookie"),
      authorizationHeader: header("authorization"),
      connectionParams: connectionParams ?? null,
    },
    userAgent: header("user-agent")?.slice(0, 500) ?? null,
    secure,
    ...(res
      ? {
          trace: { traceparent: header("traceparent") ?? null, tracestate: header("tracestate") ?? null },
          setCookie: (cookie: string) => {
            const prev = res.getHeader("Set-Cookie");
            res.setHeader("Set-Cookie", [...(Array.isArray(prev) ? prev : prev ? [String(prev)] : []), cookie]);
          },
        }
      : {}),
  };
}

export function clientInfo(clientAddress: string | null, request: RequestContext | undefined): ClientInfo {
  return { address: clientAddress, userAgent: request?.userAgent ?? null };
}

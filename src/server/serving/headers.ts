import type http from "node:http";

/** Sent on every HTTP answer: API, metrics, health, provenance, MCP, A2A and the console alike. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "X-Frame-Options": "DENY",
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Resource-Policy": "same-origin",
  // The console uses none of these; a page that is ever made to run foreign script cannot either.
  "Permissions-Policy": [
    "accelerometer=()",
    "autoplay=()",
    "camera=()",
    "display-capture=()",
    "encrypted-media=()",
    "fullscreen=()",
    "geolocation=()",
    "gyroscope=()",
    "magnetometer=()",
    "microphone=()",
    "midi=()",
    "payment=()",
    "picture-in-picture=()",
    "publickey-credentials-get=()",
    "screen-wake-lock=()",
    "serial=()",
    "usb=()",
    "xr-spatial-tracking=()",
  ].join(", "),
};

/**
 * The console's pages: scripts and styles only from our own files (no inline script, no inline
 * `<style>` or `style="…"`: React sets style props through the CSSOM, which style-src does not
 * govern), no framing, no plugins.
 */
export const CONSOLE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
  "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** Everything that is not the console (JSON, text, metrics) loads nothing and is framed by nobody. */
export const API_CSP = "default-src 'none'; frame-ancestors 'none'";

/** What a sign-out answer tells the browser to forget for this origin. */
export const CLEAR_SITE_DATA = '"cookies", "storage"';

export interface HeaderSettings {
  /** Believe X-Forwarded-Proto (a trusted reverse proxy terminates TLS). */
  trustProxy: boolean;
  /** Strict-Transport-Security max-age; 0 sends none. */
  hstsMaxAgeSeconds: number;
}

/** The request reached us over HTTPS: a TLS socket, or a trusted proxy that says so. */
export function cameOverHttps(req: http.IncomingMessage, trustProxy: boolean): boolean {
  if ((req.socket as { encrypted?: boolean }).encrypted === true) return true;
  if (!trustProxy) return false;
  const raw = req.headers["x-forwarded-proto"];
  const first = (Array.isArray(raw) ? raw[0] : raw)?.split(",")[0]?.trim().toLowerCase();
  return first === "https";
}

/**
 * Sets the headers every answer carries, before any route writes its own. `Cache-Control: no-store`
 * is the default (API answers hold the caller's data); a route that may be cached says so itself
 * with writeHead, which takes precedence, as the console's static files do.
 */
export function applySecurityHeaders(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  settings: HeaderSettings,
): void {
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
  res.setHeader("Cache-Control", "no-store");
  res.setHeader("Content-Security-Policy", API_CSP);
  if (settings.hstsMaxAgeSeconds > 0 && cameOverHttps(req, settings.trustProxy)) {
    res.setHeader("Strict-Transport-Security", `max-age=${settings.hstsMaxAgeSeconds}`);
  }
}

import type http from "node:http";
import { type Actor, hasRole } from "../../shared/roles.js";
import type { ProvenanceService } from "./service.js";

export interface ProvenanceHttpOptions {
  provenance: ProvenanceService;
  /** Who is calling (cookie or bearer token); the export is for admins. */
  actorFor(req: http.IncomingMessage): Promise<Actor | null>;
}

const PATHS = new Set(["/provenance/public-key", "/provenance/export.jsonl", "/provenance/checkpoint"]);

/**
 * `GET /provenance/public-key` (PEM, public: anyone may verify), `GET /provenance/checkpoint` (the latest
 * signed checkpoint note, for witnesses: viewer role, by cookie or API token) and
 * `GET /provenance/export.jsonl` (admin). Returns false when the path is not one of these, so the caller
 * can route on.
 */
export function handleProvenanceHttp(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  opts: ProvenanceHttpOptions,
): boolean {
  const pathname = (req.url ?? "/").split("?")[0];
  if (!pathname || !PATHS.has(pathname)) return false;
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { Allow: "GET, HEAD", "Content-Type": "text/plain" });
    res.end("Method not allowed\n");
    return true;
  }
  if (pathname === "/provenance/public-key") {
    res.writeHead(200, {
      "Content-Type": "application/x-pem-file",
      "Content-Disposition": 'inline; filename="agency-provenance.pem"',
      "X-Provenance-Key-Id": opts.provenance.keyId,
      "X-Provenance-Verifier-Key": opts.provenance.verifierKey,
      "Cache-Control": "no-cache",
    });
    res.end(req.method === "HEAD" ? undefined : opts.provenance.publicKeyPem);
    return true;
  }
  if (pathname === "/provenance/checkpoint") void serveCheckpoint(req, res, opts);
  else void exportChain(req, res, opts);
  return true;
}

async function serveCheckpoint(req: http.IncomingMessage, res: http.ServerResponse, opts: ProvenanceHttpOptions) {
  try {
    const actor = await opts.actorFor(req);
    if (!actor) return plain(res, 401, "Sign in first, or send a viewer's API token as a Bearer token.\n");
    if (!hasRole(actor.role, "viewer")) return plain(res, 403, "Reading the checkpoint needs the viewer role.\n");
    const note = await opts.provenance.latestCheckpoint();
    if (!note) return plain(res, 404, "The log is empty: its first checkpoint is signed with its first record.\n");
    res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store" });
    res.end(req.method === "HEAD" ? undefined : note);
  } catch {
    if (!res.headersSent) plain(res, 500, "The checkpoint could not be read; see the server log.\n");
    else res.destroy();
  }
}

async function exportChain(req: http.IncomingMessage, res: http.ServerResponse, opts: ProvenanceHttpOptions) {
  try {
    const actor = await opts.actorFor(req);
    if (!actor) return plain(res, 401, "Sign in first.\n");
    if (!hasRole(actor.role, "admin")) return plain(res, 403, "Exporting the provenance chain needs the admin role.\n");
    res.writeHead(200, {
      "Content-Type": "application/jsonl; charset=utf-8",
      "Content-Disposition": 'attachment; filename="agency-provenance.jsonl"',
      "Cache-Control": "no-store",
    });
    if (req.method === "HEAD") return res.end();
    for await (const line of opts.provenance.exportJsonl()) {
      if (!res.write(line)) await new Promise((resolve) => res.once("drain", resolve));
    }
    res.end();
  } catch {
    if (!res.headersSent) plain(res, 500, "The export failed; see the server log.\n");
    else res.destroy();
  }
}

function plain(res: http.ServerResponse, status: number, text: string) {
  res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8" });
  res.end(text);
}

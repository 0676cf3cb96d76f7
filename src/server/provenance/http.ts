import type http from "node:http";
import { type Actor, hasRole } from "../../shared/roles.js";
import type { ProvenanceService } from "./service.js";

export interface ProvenanceHttpOptions {
  provenance: ProvenanceService;
  /** Who is calling (cookie or bearer token); the export is for admins. */
  actorFor(req: http.IncomingMessage): Promise<Actor | null>;
}

/**
 * `GET /provenance/public-key` (PEM, public: anyone may verify) and `GET /provenance/export.jsonl` (admin).
 * Returns false when the path is not one of these, so the caller can route on.
 */
export function handleProvenanceHttp(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  opts: ProvenanceHttpOptions,
): boolean {
  const pathname = (req.url ?? "/").split("?")[0];
  if (pathname !== "/provenance/public-key" && pathname !== "/provenance/export.jsonl") return false;
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
      "Cache-Control": "no-cache",
    });
    res.end(req.method === "HEAD" ? undefined : opts.provenance.publicKeyPem);
    return true;
  }
  void exportChain(req, res, opts);
  return true;
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

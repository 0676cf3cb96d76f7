import type http from "node:http";
import { auditListInputSchema } from "../../shared/audit.js";
import { hasRole } from "../../shared/roles.js";
import type { AuthService, Credentials } from "../auth/service.js";
import { validationMessage } from "../lib/validation-message.js";
import type { Logger } from "../logger.js";
import { AUDIT_CSV_COLUMNS, auditCsvRow, csvRecord } from "./csv.js";
import type { AuditFilter, AuditService } from "./service.js";

export const AUDIT_EXPORT_PATH = "/audit/export.csv";

/** The filters the export takes: `audit.list`'s, without its paging. */
const FILTER_KEYS = ["actorKind", "actorId", "action", "resourceType", "resourceId", "from", "to"] as const;

/** Rows read per query: the export never holds more than this many entries at once. */
export const AUDIT_EXPORT_PAGE = 500;

export interface AuditHttpOptions {
  audit: AuditService;
  auth: AuthService;
  credentials(req: http.IncomingMessage): Credentials;
  log: Logger;
  pageSize?: number;
}

/** The filter from the query string, or the reason it cannot be used. */
export function parseExportQuery(search: URLSearchParams): { filter: AuditFilter } | { error: string } {
  const raw: Record<string, string> = {};
  for (const [k, v] of search) {
    if (!(FILTER_KEYS as readonly string[]).includes(k))
      return { error: `${k} is not a filter of the export; it takes ${FILTER_KEYS.join(", ")}.` };
    if (k in raw) return { error: `${k} is given more than once.` };
    raw[k] = v;
  }
  const parsed = auditListInputSchema.safeParse(raw);
  if (!parsed.success) return { error: validationMessage(parsed.error.issues) };
  const { limit: _limit, cursor: _cursor, ...filter } = parsed.data;
  return { filter };
}

/**
 * `GET /audit/export.csv?<audit.list's filters>`: the matching entries as CSV (RFC 4180, UTC times, newest
 * first), for the role that may read the trail (viewer), by session cookie or bearer API token. Read and
 * written a page at a time, waiting for the client to take each.
 */
export async function exportAuditCsv(req: http.IncomingMessage, res: http.ServerResponse, opts: AuditHttpOptions) {
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { Allow: "GET, HEAD", "Content-Type": "text/plain; charset=utf-8" });
    res.end("Method not allowed\n");
    return;
  }
  try {
    const caller = await opts.auth.resolveCaller(opts.credentials(req));
    if (!caller) return plain(res, 401, "Sign in first, or send an API token as a Bearer token.\n");
    if (caller.passwordChangeRequired)
      return plain(res, 403, "Your password was set by an administrator: choose your own before anything else.\n");
    if (!hasRole(caller.actor.role, "viewer"))
      return plain(res, 403, "Exporting the audit trail needs the viewer role.\n");
    const query = parseExportQuery(new URL(req.url ?? "/", "http://localhost").searchParams);
    if ("error" in query) return plain(res, 400, `This filter cannot be used: ${query.error}\n`);

    const stamp = new Date().toISOString().slice(0, 19).replaceAll(/[-:]/g, "");
    res.writeHead(200, {
      "Content-Type": "text/csv; charset=utf-8; header=present",
      "Content-Disposition": `attachment; filename="agency-audit-${stamp}Z.csv"`,
      "Cache-Control": "no-store",
    });
    if (req.method === "HEAD") return res.end();
    let gone = false;
    res.once("close", () => {
      gone = true;
    });
    await write(res, csvRecord(AUDIT_CSV_COLUMNS));
    for await (const page of opts.audit.entries(query.filter, opts.pageSize ?? AUDIT_EXPORT_PAGE)) {
      if (gone) return;
      await write(res, page.map(auditCsvRow).join(""));
    }
    res.end();
  } catch (err) {
    opts.log.error({ err }, "the audit export failed");
    if (!res.headersSent) plain(res, 500, "The export failed; see the server log.\n");
    else res.destroy();
  }
}

/** Writes and, when the socket's buffer is full, waits until the client has read it (or has gone). */
function write(res: http.ServerResponse, chunk: string): Promise<void> {
  if (res.write(chunk) || res.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

function plain(res: http.ServerResponse, status: number, text: string) {
  res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8" });
  res.end(text);
}

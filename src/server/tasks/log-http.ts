import type http from "node:http";
import { type Actor, hasRole } from "../../shared/roles.js";
import { LOG_EVENT_TYPES, type TaskEventDto } from "../../shared/task-events.js";
import { taskIdSchema } from "../../shared/task-inputs.js";
import type { Database } from "../db/database.js";
import { readEventsAfter } from "../events/read.js";

export interface TaskLogHttpOptions {
  db: Database;
  /** Who is calling (cookie or bearer token); reading a task's output needs the viewer role. */
  actorFor(req: http.IncomingMessage): Promise<Actor | null>;
}

/** `/download/tasks/<id>/log.txt`, optionally `?attempt=N`. */
const PATH = /^\/download\/tasks\/([^/]+)\/log\.txt$/;
/** Events read per statement while streaming: one index range each, the response written as it goes. */
const CHUNK = 2_000;

const str = (v: unknown) => (typeof v === "string" ? v : null);

/**
 * One line of the download: time, attempt, source, text, tab-separated so that a spreadsheet or `cut`
 * splits it; the text's own tabs and newlines are kept visible as \t and \n.
 */
export function logLineText(e: TaskEventDto): string {
  const d = e.data;
  const attempt = typeof d.attempt === "number" ? `#${d.attempt}` : "-";
  let source: string;
  let text: string;
  if (e.type === "log") {
    source = str(d.stream) ?? "info";
    text = str(d.line) ?? "";
  } else if (e.type === "progress") {
    source = "progress";
    text = [typeof d.percent === "number" ? `${d.percent}%` : null, str(d.message)].filter(Boolean).join(" ");
  } else if (e.type === "attempt_try_failed") {
    source = "agency";
    text = `try ${String(d.try ?? "?")} of ${String(d.of ?? "?")} on ${str(d.worker) ?? "the worker"} failed: ${str(d.error) ?? "unknown error"}`;
  } else if (e.type === "attempt_lost") {
    source = "agency";
    text = `attempt lost: ${str(d.error) ?? "its lease expired"}`;
  } else {
    source = "agency";
    text = `circuit breaker of ${str(d.worker) ?? "the worker"}: ${str(d.from) ?? "?"} -> ${str(d.to) ?? "?"}`;
  }
  const escaped = text.replace(/\\/g, "\\\\").replace(/\t/g, "\\t").replace(/\r?\n/g, "\\n");
  return `${new Date(e.createdAt).toISOString()}\t${attempt}\t${source}\t${escaped}\n`;
}

/**
 * `GET /download/tasks/<id>/log.txt[?attempt=N]`: a task's whole output (what its Logs tab shows) as a text
 * file, streamed in pages of CHUNK events with back-pressure. Viewer role, by cookie or API token, like
 * `tasks.events`. Returns false when the path is not this route.
 */
export function handleTaskLogHttp(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  pathname: string,
  opts: TaskLogHttpOptions,
): boolean {
  const m = PATH.exec(pathname);
  if (!m) return false;
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { Allow: "GET, HEAD", "Content-Type": "text/plain; charset=utf-8" });
    res.end("Method not allowed\n");
    return true;
  }
  void serveLog(req, res, m[1] ?? "", opts);
  return true;
}

async function serveLog(req: http.IncomingMessage, res: http.ServerResponse, rawId: string, opts: TaskLogHttpOptions) {
  try {
    const actor = await opts.actorFor(req);
    if (!actor) return plain(res, 401, "Sign in first, or send a viewer's API token as a Bearer token.\n");
    if (!hasRole(actor.role, "viewer")) return plain(res, 403, "Reading a task's output needs the viewer role.\n");
    const id = taskIdSchema.safeParse(rawId.includes("%") ? "" : rawId);
    if (!id.success) return plain(res, 400, "Task id must be a UUID.\n");
    const attemptParam = new URL(req.url ?? "/", "http://localhost").searchParams.get("attempt");
    let attempt: number | undefined;
    if (attemptParam !== null) {
      if (!/^[1-9]\d{0,6}$/.test(attemptParam))
        return plain(res, 400, "attempt must be an attempt number (1 or more).\n");
      attempt = Number(attemptParam);
    }
    const [task] = await opts.db.query<{ id: string }>("SELECT id FROM tasks WHERE id = $1::uuid", [id.data]);
    if (!task) return plain(res, 404, `Task ${id.data} does not exist.\n`);
    const name = `task-${id.data.slice(0, 8)}${attempt ? `-attempt-${attempt}` : ""}.log.txt`;
    res.writeHead(200, {
      "Content-Type": "text/plain; charset=utf-8",
      "Content-Disposition": `attachment; filename="${name}"`,
      "Cache-Control": "no-store",
    });
    if (req.method === "HEAD") return res.end();
    let after = 0n;
    for (;;) {
      const page = await readEventsAfter(opts.db, after, CHUNK, {
        taskId: id.data,
        kinds: LOG_EVENT_TYPES,
        ...(attempt ? { attempt } : {}),
      });
      if (!page.length) break;
      if (!res.write(page.map(logLineText).join(""))) await new Promise((resolve) => res.once("drain", resolve));
      if (page.length < CHUNK || res.destroyed) break;
      after = BigInt(page[page.length - 1]?.seq ?? "0");
    }
    res.end();
  } catch {
    if (!res.headersSent) plain(res, 500, "The log could not be read; see the server log.\n");
    else res.destroy();
  }
}

function plain(res: http.ServerResponse, status: number, text: string) {
  res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store" });
  res.end(text);
}

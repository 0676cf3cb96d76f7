import { useEffect, useLayoutEffect, useRef, useState } from "react";
import { Link, useSearchParams } from "react-router-dom";
import { LOG_EVENT_TYPES, type TaskEventDto } from "../../shared/task-events.js";
import { ErrorMessage } from "../components/ErrorMessage.js";
import { formatDateTime, formatDuration } from "../lib/format.js";
import { trpc } from "../trpc.js";
import { EarlierButton } from "./Timeline.js";
import { useEventLog } from "./useEventLog.js";
import "./task-history.css";

/** Lines read at once: the newest ones first, earlier ones on demand. */
const LOG_PAGE = 500;
/** Within this many pixels of the bottom counts as "at the bottom", so following resumes. */
const STICK_PX = 24;

const str = (v: unknown): string | null => (typeof v === "string" ? v : null);
const num = (v: unknown): number | null => (typeof v === "number" ? v : null);

export interface LogLine {
  seq: string;
  at: Date;
  attempt: number | null;
  stream: "stdout" | "stderr" | "info" | "progress" | "system";
  text: string;
}

export function toLine(e: TaskEventDto): LogLine {
  return { ...lineBody(e), at: e.createdAt };
}

function lineBody(e: TaskEventDto): Omit<LogLine, "at"> {
  const d = e.data;
  const attempt = num(d.attempt);
  if (e.type === "log") {
    const s = str(d.stream);
    return {
      seq: e.seq,
      attempt,
      stream: s === "stdout" || s === "stderr" ? s : "info",
      text: str(d.line) ?? "",
    };
  }
  if (e.type === "progress") {
    const pct = num(d.percent);
    return {
      seq: e.seq,
      attempt,
      stream: "progress",
      text: [pct !== null ? `${pct}%` : null, str(d.message)].filter(Boolean).join(" "),
    };
  }
  if (e.type === "attempt_try_failed") {
    const retry = num(d.retryInMs);
    return {
      seq: e.seq,
      attempt,
      stream: "system",
      text: `try ${num(d.try) ?? "?"} of ${num(d.of) ?? "?"} on ${str(d.worker) ?? "the worker"} failed: ${(
        str(d.error) ?? "unknown error"
      ).replace(
        /\.$/,
        "",
      )}${retry !== null ? `; retrying in ${retry < 1000 ? `${retry} ms` : formatDuration(Math.round(retry / 1000))}` : ""}`,
    };
  }
  if (e.type === "attempt_lost") {
    return { seq: e.seq, attempt, stream: "system", text: `attempt lost: ${str(d.error) ?? "its lease expired"}` };
  }
  return {
    seq: e.seq,
    attempt,
    stream: "system",
    text: `circuit breaker of ${str(d.worker) ?? "the worker"}: ${str(d.from) ?? "?"} → ${str(d.to) ?? "?"}${
      str(d.reason) ? ` (${str(d.reason)})` : ""
    }`,
  };
}

const pad = (n: number, w = 2) => String(n).padStart(w, "0");
/** Local wall-clock time to the millisecond: lines of one task seldom span days, and the title has the date. */
export const clockTime = (d: Date) =>
  `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;

/** Lines as the log box shows them: time (a link to the line), attempt, source, text. */
export function LogLines({
  lines,
  highlight,
  lineHref,
}: {
  lines: readonly LogLine[];
  highlight?: string | null;
  /** The address of a line, for its time's link; none: the time is plain text. */
  lineHref?: (seq: string) => string;
}) {
  return (
    <>
      {lines.map((l) => (
        <div
          key={l.seq}
          id={`L${l.seq}`}
          className="log-line log-line-timed"
          data-stream={l.stream}
          data-seq={l.seq}
          data-highlighted={highlight === l.seq ? "true" : undefined}
        >
          {/* Time, attempt and source in columns of their own, so every line's text starts at the same place. */}
          <span className="log-meta log-time">
            {lineHref ? (
              <Link to={lineHref(l.seq)} replace title={`${formatDateTime(l.at)}: link to this line`}>
                <time dateTime={l.at.toISOString()}>{clockTime(l.at)}</time>
              </Link>
            ) : (
              <time dateTime={l.at.toISOString()} title={formatDateTime(l.at)}>
                {clockTime(l.at)}
              </time>
            )}
          </span>
          <span className="log-meta log-attempt">{l.attempt !== null ? `#${l.attempt}` : ""}</span>
          <span className="log-meta">{l.stream}</span>
          <span className="log-text">{l.text}</span>
        </div>
      ))}
    </>
  );
}

/** Most matches the server search shows at once. */
const SEARCH_MAX = 1000;

/**
 * The worker's output as it arrives: the newest lines, earlier ones on demand, new ones live (this tab
 * subscribes to the output only while it is open). It follows new lines while the reader is at the bottom
 * and stops following as soon as they scroll up, so a line can be read while more stream in. A search
 * narrows the lines loaded here, or asks the server for every matching line of the whole log; each line's
 * time links to it (`?tab=logs&line=<seq>`), and such a link loads earlier lines until it is found.
 */
export function Logs({ taskId, live }: { taskId: string; live: boolean }) {
  const log = useEventLog(taskId, LOG_EVENT_TYPES, { pageSize: LOG_PAGE });
  const utils = trpc.useUtils();
  const [params] = useSearchParams();
  const target = params.get("line");
  const all = log.events.map(toLine);
  const [query, setQuery] = useState("");
  const [server, setServer] = useState<{ search: string; lines: LogLine[]; more: boolean } | null>(null);
  const [searching, setSearching] = useState(false);
  const [searchError, setSearchError] = useState<{ message: string } | null>(null);
  const q = query.trim().toLowerCase();
  const serverHit = server && server.search === query.trim() ? server : null;
  const lines = serverHit ? serverHit.lines : q ? all.filter((l) => l.text.toLowerCase().includes(q)) : all;
  const box = useRef<HTMLDivElement>(null);
  const [follow, setFollow] = useState(target === null);
  /** The scroll height when this view last moved to the bottom itself; null after "Follow new lines". */
  const snappedAt = useRef<number | null>(null);
  const found = target !== null && all.some((l) => l.seq === target);
  /** Lines are in seq order: a target newer than the oldest loaded line, yet not loaded, is not a line here. */
  const withinLoaded = target !== null && /^\d{1,19}$/.test(target) && BigInt(target) > BigInt(all[0]?.seq ?? "0");
  const missing =
    target !== null && !found && !log.loadingOlder && !log.first.isPending && (withinLoaded || !log.hasOlder);

  // A link to a line not loaded yet: read earlier pages until it is there (or there is nothing earlier).
  useEffect(() => {
    if (target === null || found || withinLoaded || !log.hasOlder || log.loadingOlder || log.olderError) return;
    void log.loadOlder();
  }, [target, found, withinLoaded, log.hasOlder, log.loadingOlder, log.olderError, log.loadOlder]);

  // Once the linked line is shown: stop following, bring it into view.
  useEffect(() => {
    if (!found || !target) return;
    setFollow(false);
    document.getElementById(`L${target}`)?.scrollIntoView({ block: "center" });
  }, [found, target]);

  // biome-ignore lint/correctness/useExhaustiveDependencies: scrolls when lines are added.
  useLayoutEffect(() => {
    const el = box.current;
    if (!el || !follow) return;
    // The reader may have scrolled up after the last snap while its scroll event is still pending
    // (browsers dispatch them with the next frame); snapping now would undo their scroll.
    const snapped = snappedAt.current;
    if (snapped !== null && snapped - el.scrollTop - el.clientHeight > STICK_PX) {
      setFollow(false);
      return;
    }
    el.scrollTop = el.scrollHeight;
    snappedAt.current = el.scrollHeight;
  }, [lines.length, follow]);

  const searchServer = async () => {
    const search = query.trim();
    if (!search) return;
    setSearching(true);
    setSearchError(null);
    try {
      const page = await utils.tasks.events.fetch({
        taskId,
        kinds: [...LOG_EVENT_TYPES],
        search,
        limit: SEARCH_MAX,
      });
      setServer({ search, lines: page.items.map(toLine), more: page.hasMore });
    } catch (err) {
      setSearchError(err as { message: string });
    } finally {
      setSearching(false);
    }
  };

  if (log.first.error) return <ErrorMessage title="Could not load the output:" error={log.first.error} />;
  if (log.first.isPending) return <p className="loading">Loading output…</p>;
  const stopped =
    log.sub.status === "error" ? (
      <ErrorMessage title="Live output stopped:" error={log.sub.error}>
        <button type="button" className="btn btn-small" onClick={() => log.sub.reset()}>
          Reconnect
        </button>
      </ErrorMessage>
    ) : null;
  if (!all.length) {
    return (
      <>
        {stopped}
        <p className="muted">No output yet.{live ? " Lines appear here as the worker writes them." : ""}</p>
      </>
    );
  }
  const lineHref = (seq: string) => `?tab=logs&line=${seq}`;
  return (
    <div className="logs">
      {stopped}
      <EarlierButton log={log} what="lines" />
      <div className="logs-bar">
        <span className="muted" data-testid="log-count">
          {serverHit
            ? `${serverHit.lines.length}${serverHit.more ? "+" : ""} matching ${serverHit.lines.length === 1 ? "line" : "lines"} in the whole log`
            : q
              ? `${lines.length} of ${all.length}${log.hasOlder ? "+" : ""} lines match`
              : `${all.length}${log.hasOlder ? "+" : ""} ${all.length === 1 ? "line" : "lines"}`}
        </span>
        <span className="legend">
          <span className="log-stream" data-stream="stdout">
            stdout
          </span>
          <span className="log-stream" data-stream="stderr">
            stderr
          </span>
          <span className="log-stream" data-stream="system">
            agency
          </span>
        </span>
        {follow ? (
          <span className="muted" data-testid="log-follow">
            Following new lines
          </span>
        ) : (
          <button
            type="button"
            className="btn btn-small"
            onClick={() => {
              snappedAt.current = null;
              setFollow(true);
            }}
          >
            Follow new lines
          </button>
        )}
        <a className="btn btn-small" href={`/download/tasks/${taskId}/log.txt`} download>
          Download log
        </a>
      </div>
      <form
        className="log-search"
        onSubmit={(e) => {
          e.preventDefault();
          void searchServer();
        }}
      >
        <label htmlFor="log-search-input">Search the output</label>
        <input
          id="log-search-input"
          type="search"
          value={query}
          maxLength={200}
          onChange={(e) => setQuery(e.target.value)}
          placeholder="Text in a line"
        />
        <button type="submit" className="btn btn-small" disabled={!query.trim() || searching}>
          {searching ? "Searching…" : "Search the whole log"}
        </button>
      </form>
      {searchError ? <ErrorMessage title="The search failed:" error={searchError} /> : null}
      {missing ? (
        <p className="notice notice-warn" role="status">
          Line {target} is not in this task's output.
        </p>
      ) : null}
      <div
        ref={box}
        className="log-box"
        role="log"
        aria-label="Worker output"
        aria-live={live ? "polite" : "off"}
        // biome-ignore lint/a11y/noNoninteractiveTabindex: the scrolling region must be reachable by keyboard.
        tabIndex={0}
        onScroll={(e) => {
          const el = e.currentTarget;
          const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight <= STICK_PX;
          if (atBottom !== follow) setFollow(atBottom);
        }}
      >
        {lines.length ? (
          <LogLines lines={lines} highlight={target} lineHref={lineHref} />
        ) : (
          <p className="log-empty">No line matches.</p>
        )}
      </div>
    </div>
  );
}

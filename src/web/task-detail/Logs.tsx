import { useLayoutEffect, useRef, useState } from "react";
import { LOG_EVENT_TYPES, type TaskEventDto } from "../../shared/task-events.js";
import { ErrorMessage } from "../components/ErrorMessage.js";
import { formatDuration } from "../lib/format.js";
import { EarlierButton } from "./Timeline.js";
import { useEventLog } from "./useEventLog.js";

/** Lines read at once: the newest ones first, earlier ones on demand. */
const LOG_PAGE = 500;
/** Within this many pixels of the bottom counts as "at the bottom", so following resumes. */
const STICK_PX = 24;

const str = (v: unknown): string | null => (typeof v === "string" ? v : null);
const num = (v: unknown): number | null => (typeof v === "number" ? v : null);

interface LogLine {
  seq: string;
  attempt: number | null;
  stream: "stdout" | "stderr" | "info" | "progress" | "system";
  text: string;
}

function toLine(e: TaskEventDto): LogLine {
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

/**
 * The worker's output as it arrives: the newest lines, earlier ones on demand, new ones live (this tab
 * subscribes to the output only while it is open). It follows new lines while the reader is at the bottom
 * and stops following as soon as they scroll up, so a line can be read while more stream in.
 */
export function Logs({ taskId, live }: { taskId: string; live: boolean }) {
  const log = useEventLog(taskId, LOG_EVENT_TYPES, { pageSize: LOG_PAGE });
  const lines = log.events.map(toLine);
  const box = useRef<HTMLDivElement>(null);
  const [follow, setFollow] = useState(true);
  /** The scroll height when this view last moved to the bottom itself; null after "Follow new lines". */
  const snappedAt = useRef<number | null>(null);

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
  if (!lines.length) {
    return (
      <>
        {stopped}
        <p className="muted">No output yet.{live ? " Lines appear here as the worker writes them." : ""}</p>
      </>
    );
  }
  return (
    <div className="logs">
      {stopped}
      <EarlierButton log={log} what="lines" />
      <div className="logs-bar">
        <span className="muted">
          {lines.length}
          {log.hasOlder ? "+" : ""} {lines.length === 1 ? "line" : "lines"}
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
      </div>
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
        {lines.map((l) => (
          <div key={l.seq} className="log-line" data-stream={l.stream}>
            {/* Attempt and source in columns of their own, so every line's text starts at the same place. */}
            <span className="log-meta log-attempt">{l.attempt !== null ? `#${l.attempt}` : ""}</span>
            <span className="log-meta">{l.stream}</span>
            <span className="log-text">{l.text}</span>
          </div>
        ))}
      </div>
    </div>
  );
}

import type { DestinationStream } from "pino";

/** How the server writes its log: one JSON object a line, or lines for a person at a terminal. */
export type LogFormat = "pretty" | "json";

/** LOG_FORMAT when set; otherwise pretty on a terminal and JSON when stdout is a pipe or a file. */
export function resolveLogFormat(configured: LogFormat | undefined, stdoutIsTTY: boolean | undefined): LogFormat {
  return configured ?? (stdoutIsTTY ? "pretty" : "json");
}

const LEVELS: Record<number, { label: string; color: string }> = {
  10: { label: "TRACE", color: "\x1b[90m" },
  20: { label: "DEBUG", color: "\x1b[36m" },
  30: { label: "INFO", color: "\x1b[32m" },
  40: { label: "WARN", color: "\x1b[33m" },
  50: { label: "ERROR", color: "\x1b[31m" },
  60: { label: "FATAL", color: "\x1b[35m" },
};
const RESET = "\x1b[0m";
const DIM = "\x1b[2m";
const BOLD = "\x1b[1m";

const pad = (n: number, width = 2) => String(n).padStart(width, "0");

/** Local wall-clock time of an epoch-milliseconds value: HH:MM:SS.mmm. */
export function localClock(epochMs: number): string {
  const d = new Date(epochMs);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** A value as it reads after `key=`: bare when it is one plain word, JSON otherwise (quoted strings, objects). */
function formatValue(value: unknown): string {
  if (typeof value === "string") return /^[\w.:/@+-]+$/.test(value) ? value : JSON.stringify(value);
  if (value === null || typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value) ?? String(value);
}

interface SerializedError {
  message?: unknown;
  stack?: unknown;
}

const isSerializedError = (v: unknown): v is SerializedError =>
  typeof v === "object" && v !== null && typeof (v as SerializedError).stack === "string";

/**
 * One pino JSON line as a person reads it: `HH:MM:SS.mmm LEVEL message key=value …`, and an error's stack on
 * indented lines below. A line that is not a pino object (another program's output) is returned as it came.
 */
export function prettyLine(line: string, colors: boolean): string {
  const text = line.endsWith("\n") ? line.slice(0, -1) : line;
  let entry: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return `${text}\n`;
    entry = parsed as Record<string, unknown>;
  } catch {
    return `${text}\n`;
  }
  const { time, level, msg, ...fields } = entry;
  const paint = (code: string, s: string) => (colors ? `${code}${s}${RESET}` : s);
  const known = typeof level === "number" ? LEVELS[level] : undefined;
  const label = (known?.label ?? String(level ?? "LOG")).padEnd(5);
  const parts: string[] = [];
  if (typeof time === "number") parts.push(paint(DIM, localClock(time)));
  parts.push(paint(known ? `${BOLD}${known.color}` : BOLD, label));
  if (msg !== undefined) parts.push(typeof msg === "string" ? msg : formatValue(msg));
  const stacks: string[] = [];
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    if (isSerializedError(value)) {
      parts.push(`${paint(DIM, `${key}=`)}${formatValue(value.message ?? "")}`);
      stacks.push(
        ...(value.stack as string)
          .split("\n")
          .slice(1)
          .map((l) => paint(DIM, `    ${l.trim()}`)),
      );
      continue;
    }
    parts.push(`${paint(DIM, `${key}=`)}${formatValue(value)}`);
  }
  return `${[parts.join(" "), ...stacks].join("\n")}\n`;
}

/**
 * A pino destination that turns each JSON line into a pretty one and writes it to `out` (the terminal).
 * Colours only when asked for, i.e. when `out` is a TTY.
 */
export function prettyDestination(
  out: { write(chunk: string): unknown },
  opts: { colors: boolean },
): DestinationStream {
  return {
    write(chunk: string) {
      // pino writes one line a call; a relayed chunk (another process's output) may carry several.
      const lines = chunk.split("\n");
      if (lines.at(-1) === "") lines.pop();
      for (const line of lines) out.write(prettyLine(line, opts.colors));
    },
  };
}

import pino from "pino";
import { type LogFormat, prettyDestination } from "./log-pretty.js";

export type Logger = pino.Logger;

export interface LogOutput {
  format: LogFormat;
  /** Where pretty lines go (default process.stdout); colours when it is a TTY. JSON lines always go to stdout. */
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
}

/**
 * `hooks`: e.g. the database availability's `logHook`, which keeps a connectivity error's stack out of the log.
 * `output`: pretty lines for a terminal, or pino's JSON lines (the default).
 */
export function createLogger(level: string, hooks?: pino.LoggerOptions["hooks"], output?: LogOutput): Logger {
  const options: pino.LoggerOptions = {
    level,
    ...(hooks ? { hooks } : {}),
    base: undefined,
    redact: { paths: ["req.headers.authorization", "req.headers.cookie", "*.token", "*.password"], remove: true },
  };
  if (output?.format !== "pretty") return pino(options);
  const stream = output.stream ?? process.stdout;
  return pino(options, prettyDestination(stream, { colors: stream.isTTY === true }));
}

/**
 * Writes a line of another process's pino log (the reference worker's) to this logger's own destination, so it
 * reads like the rest: pretty on a terminal, JSON otherwise.
 */
export function relayLogLine(log: Logger, line: string): void {
  const stream = (log as unknown as Record<symbol, pino.DestinationStream | undefined>)[pino.symbols.streamSym];
  if (stream) stream.write(`${line}\n`);
  else process.stdout.write(`${line}\n`);
}

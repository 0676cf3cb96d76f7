import pino from "pino";

export type Logger = pino.Logger;

/** `hooks`: e.g. the database availability's `logHook`, which keeps a connectivity error's stack out of the log. */
export function createLogger(level: string, hooks?: pino.LoggerOptions["hooks"]): Logger {
  return pino({
    level,
    ...(hooks ? { hooks } : {}),
    base: undefined,
    redact: { paths: ["req.headers.authorization", "req.headers.cookie", "*.token", "*.password"], remove: true },
  });
}

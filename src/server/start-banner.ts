import type { FirstStartSignIn } from "./auth/service.js";
import type { LogFormat } from "./log-pretty.js";
import type { Logger } from "./logger.js";

/** The console's address for the banner: PUBLIC_URL when set, else this host (localhost for a wildcard or loopback). */
export function consoleUrl(opts: { publicUrl?: string; host: string; port: number }): string {
  if (opts.publicUrl) return opts.publicUrl.replace(/\/+$/, "");
  const local = ["", "0.0.0.0", "::", "127.0.0.1", "::1", "localhost"];
  const host = local.includes(opts.host) ? "localhost" : opts.host.includes(":") ? `[${opts.host}]` : opts.host;
  return `http://${host}:${opts.port}`;
}

export interface StartAnnouncement {
  /** null: the start failed after the first admin was made (its password is shown all the same). */
  url: string | null;
  port: number;
  dev: boolean;
  /** Set when this start created the first admin with a generated password. */
  signIn: FirstStartSignIn | null;
}

/** The framed text shown on a terminal once the server listens. */
export function startBanner(a: StartAnnouncement, colors: boolean): string {
  const rows: Array<[string, string]> = [["Console", a.url ?? "not started (the reason follows)"]];
  const notes: string[] = [];
  if (a.signIn) {
    rows.push(["Username", a.signIn.username], ["Password", a.signIn.password]);
    notes.push(
      "First start: this one-time password is shown only now.",
      "Sign in with it; the console then asks you to choose your own.",
    );
  }
  if (a.dev) notes.push("Development mode: Vite serves the console's sources.");
  const labelWidth = Math.max(...rows.map(([label]) => label.length));
  const lines = [
    a.url ? "Agent Agency is ready" : "Agent Agency did not start",
    "",
    ...rows.map(([label, value]) => `${label.padEnd(labelWidth)}  ${value}`),
    ...(notes.length ? ["", ...notes] : []),
  ];
  const width = Math.max(...lines.map((l) => l.length));
  const bold = (s: string) => (colors ? `\x1b[1m${s}\x1b[0m` : s);
  const frame = (s: string) => (colors ? `\x1b[36m${s}\x1b[0m` : s);
  const body = lines.map((l, i) => {
    const padded = l.padEnd(width);
    // The title and the values a person copies stand out; the frame keeps them together.
    const shown = i === 0 || (a.signIn && l.startsWith("Password")) ? bold(padded) : padded;
    return `${frame("│")}  ${shown}  ${frame("│")}`;
  });
  const rule = "─".repeat(width + 4);
  return ["", frame(`┌${rule}┐`), ...body, frame(`└${rule}┘`), ""].join("\n");
}

/**
 * Tells the operator the server is up. Pretty: the banner on the terminal (whatever LOG_LEVEL says, since a
 * one-time password must not be lost to a quiet log level). JSON: one line with the URL, and the first admin's
 * username and one-time password when this start made them.
 */
export function announceStart(
  log: Logger,
  format: LogFormat,
  a: StartAnnouncement,
  out: NodeJS.WritableStream & { isTTY?: boolean } = process.stdout,
): void {
  if (format === "pretty") {
    out.write(`${startBanner(a, out.isTTY === true)}\n`);
    return;
  }
  const fields = a.url ? { port: a.port, dev: a.dev, url: a.url } : {};
  const serving = a.url ? `Agent Agency is serving the console on ${a.url}` : "Agent Agency did not start";
  if (!a.signIn) {
    log.info(fields, serving);
    return;
  }
  log.warn(
    { ...fields, username: a.signIn.username, oneTimePassword: a.signIn.password },
    `${serving}. First start: sign in as "${a.signIn.username}" with the one-time password in oneTimePassword ` +
      "(shown only this once; the console then asks you to choose your own)",
  );
}

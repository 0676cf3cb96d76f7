import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { localClock, prettyDestination, prettyLine } from "../src/server/log-pretty.js";
import { createLogger, relayLogLine } from "../src/server/logger.js";
import { consoleUrl, startBanner } from "../src/server/start-banner.js";
import { signInCookie } from "./helpers/web-client.js";

const CLOCK = /^\d\d:\d\d:\d\d\.\d{3}$/;

function buffer() {
  const chunks: string[] = [];
  return { chunks, out: { write: (s: string) => chunks.push(s) }, text: () => chunks.join("") };
}

describe("pretty log lines", () => {
  it("prints a real pino logger's lines as time, level, message and key=value fields", () => {
    const b = buffer();
    const log = pino({ level: "trace", base: undefined }, prettyDestination(b.out, { colors: false }));
    const before = Date.now();
    log.info(
      { port: 3000, dev: false, location: "/var/lib/agency data", nested: { a: 1 } },
      "database schema is current",
    );
    log.warn("careful");
    log.debug({ worker: "reference" }, "polled");
    const lines = b.text().split("\n");
    expect(lines.at(-1)).toBe("");
    const [time, level, ...rest] = (lines[0] as string).split(" ");
    expect(time).toMatch(CLOCK);
    // local wall-clock time of the entry, not epoch milliseconds
    const hours = [before, Date.now()].map((t) => String(new Date(t).getHours()).padStart(2, "0"));
    expect(hours).toContain(time?.slice(0, 2));
    expect(level).toBe("INFO");
    expect(rest.join(" ")).toBe(
      ' database schema is current port=3000 dev=false location="/var/lib/agency data" nested={"a":1}',
    );
    expect(lines[1]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} WARN {2}careful$/);
    expect(lines[2]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} DEBUG polled worker=reference$/);
    expect(b.text()).not.toContain("\x1b[");
  });

  it("shows an error's message as a field and its stack below; colours only when asked", () => {
    const b = buffer();
    const log = pino({ base: undefined }, prettyDestination(b.out, { colors: true }));
    log.error({ err: new Error("connect ECONNREFUSED 127.0.0.1:5432") }, "shutdown failed");
    const [first, ...stack] = b.text().trimEnd().split("\n");
    expect(first).toContain("\x1b[");
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the ANSI escapes are what is stripped
    const plain = (first as string).replace(/\x1b\[[0-9;]*m/g, "");
    expect(plain).toMatch(/^\d\d:\d\d:\d\d\.\d{3} ERROR shutdown failed err="connect ECONNREFUSED 127\.0\.0\.1:5432"$/);
    expect(stack.length).toBeGreaterThan(0);
    expect(stack[0]).toContain("at ");
  });

  it("passes a line that is not pino's JSON through unchanged", () => {
    expect(prettyLine("plain text from elsewhere", false)).toBe("plain text from elsewhere\n");
    expect(prettyLine("[1,2]", false)).toBe("[1,2]\n");
    expect(localClock(new Date(2026, 0, 2, 3, 4, 5, 6).getTime())).toBe("03:04:05.006");
  });

  it("createLogger writes pretty lines to its stream, and relays another process's pino line through it", () => {
    const chunks: string[] = [];
    const stream = new Writable({
      write(chunk, _enc, cb) {
        chunks.push(String(chunk));
        cb();
      },
    });
    const log = createLogger("info", undefined, { format: "pretty", stream });
    log.info({ applied: [] }, "migrations applied");
    relayLogLine(log, JSON.stringify({ level: 30, time: Date.now(), worker: "reference", msg: "listening" }));
    const lines = chunks.join("").trimEnd().split("\n");
    expect(lines[0]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} INFO {2}migrations applied applied=\[\]$/);
    expect(lines[1]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} INFO {2}listening worker=reference$/);
  });
});

describe("start banner", () => {
  it("frames the URL and the one-time password", () => {
    const text = startBanner(
      { url: "http://localhost:3000", port: 3000, dev: false, signIn: { username: "admin", password: "pw" } },
      false,
    );
    const rows = text.split("\n").filter(Boolean);
    expect(rows[0]).toMatch(/^┌─+┐$/);
    expect(rows.at(-1)).toMatch(/^└─+┘$/);
    // every row of the frame is as wide as the rule
    expect(new Set(rows.map((r) => [...r].length)).size).toBe(1);
    expect(text).toContain("Console   http://localhost:3000");
    expect(text).toContain("Username  admin");
    expect(text).toContain("Password  pw");
    expect(startBanner({ url: "http://localhost:3000", port: 3000, dev: false, signIn: null }, false)).not.toContain(
      "Password",
    );
  });

  it("names the console by PUBLIC_URL, else by its host (localhost for a wildcard or loopback)", () => {
    expect(consoleUrl({ host: "0.0.0.0", port: 3000 })).toBe("http://localhost:3000");
    expect(consoleUrl({ host: "10.0.0.7", port: 80 })).toBe("http://10.0.0.7:80");
    expect(consoleUrl({ host: "fd00::7", port: 3000 })).toBe("http://[fd00::7]:3000");
    expect(consoleUrl({ publicUrl: "https://agency.example.com/", host: "0.0.0.0", port: 3000 })).toBe(
      "https://agency.example.com",
    );
  });
});

// The real server as its own process, on a fresh embedded database, so its first start makes the admin.
describe("the server's start output", { timeout: 300_000 }, () => {
  let child: ChildProcess | null = null;
  let dataDir = "";
  afterEach(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child?.once("exit", resolve));
      child.kill("SIGKILL");
      await exited;
    }
    child = null;
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  /** Starts the server and resolves with everything it printed once `until` holds for its output. */
  function start(logFormat: "pretty" | "json", until: (out: string) => boolean): Promise<string> {
    dataDir = mkdtempSync(path.join(os.tmpdir(), "agency-start-output-"));
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PORT: "0",
      HOST: "127.0.0.1",
      DATA_DIR: dataDir,
      DATABASE_URL: "",
      WEB_DIST_DIR: "/nonexistent",
      START_REFERENCE_WORKER: "0",
      LOG_LEVEL: "info",
      LOG_FORMAT: logFormat,
      DEV: "0",
    };
    delete env.AGENCY_ADMIN_PASSWORD;
    delete env.AGENCY_BOOTSTRAP_TOKEN;
    delete env.PUBLIC_URL;
    const proc = spawn(process.execPath, ["--import", "tsx", "src/server/main.ts"], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    child = proc;
    let out = "";
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no start banner within 240 s:\n${out}`)), 240_000);
      const check = () => {
        if (!until(out)) return;
        clearTimeout(timer);
        resolve(out);
      };
      proc.stdout?.on("data", (d: Buffer) => {
        out += d.toString();
        check();
      });
      proc.stderr?.on("data", (d: Buffer) => {
        out += d.toString();
      });
      proc.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`the server exited (${code}) before its banner:\n${out}`));
      });
    });
  }

  it("LOG_FORMAT=pretty: readable lines, then a banner with the URL and the first admin's one-time password", async () => {
    const out = await start("pretty", (o) => /└─+┘/.test(o));
    const url = /Console\s+(http:\/\/\S+)/.exec(out)?.[1] as string;
    const username = /Username\s+(\S+)/.exec(out)?.[1] as string;
    const password = /Password\s+(\S+)/.exec(out)?.[1] as string;
    expect(url).toMatch(/^http:\/\/localhost:\d+$/);
    expect(username).toBe("admin");
    expect(password).toHaveLength(20);
    expect(out).not.toContain("Development mode");
    // the password appears in the banner only
    expect(out.split(password)).toHaveLength(2);
    // log lines before it: local time, level word, message, fields; no JSON
    const logLines = out.split("\n").filter((l) => /^\d\d:\d\d:\d\d\.\d{3} /.test(l));
    expect(
      logLines.some((l) => /^\S+ INFO {2}database schema is current|^\S+ INFO {2}migrations applied/.test(l)),
    ).toBe(true);
    expect(out).not.toMatch(/^\{"level"/m);
    // the banner tells the truth: this URL serves, and this password signs in
    const base = url.replace("localhost", "127.0.0.1");
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    const { cookie, res } = await signInCookie(base, username, password);
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    expect(cookie).toMatch(/=/);
  });

  it("LOG_FORMAT=json: one JSON line carries the URL, the username and the one-time password", async () => {
    const out = await start(
      "json",
      // a whole line (its newline written), not the start of one
      (o) =>
        o
          .split("\n")
          .slice(0, -1)
          .some((l) => l.includes('"oneTimePassword"')),
    );
    const lines = out.split("\n").filter(Boolean);
    for (const line of lines) expect(() => JSON.parse(line), line).not.toThrow();
    const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const started = entries.filter((e) => typeof e.oneTimePassword === "string");
    expect(started).toHaveLength(1);
    const entry = started[0] as { url: string; port: number; username: string; oneTimePassword: string; msg: string };
    expect(entry.url).toBe(`http://localhost:${entry.port}`);
    expect(entry).toMatchObject({ dev: false, level: 40 });
    expect(entry.username).toBe("admin");
    expect(entry.oneTimePassword).toHaveLength(20);
    expect(entry.msg).toContain("serving the console");
    expect(lines.filter((l) => l.includes(entry.oneTimePassword))).toHaveLength(1);
    const { res } = await signInCookie(`http://127.0.0.1:${entry.port}`, entry.username, entry.oneTimePassword);
    expect(res.status, JSON.stringify(res.json)).toBe(200);
  });
});

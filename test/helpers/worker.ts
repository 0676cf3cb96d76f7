import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { TaskSpecInput } from "../../src/shared/task-spec.js";
import { taskSpecSchema } from "../../src/shared/task-spec.js";
import type { ExecuteRequest, StreamLine } from "../../src/shared/worker-protocol.js";
import { executeResultSchema, streamLineSchema } from "../../src/shared/worker-protocol.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export interface ReferenceWorkerProcess {
  url: string;
  pid: number;
  /** Every stdout line so far (the worker logs one JSON object per line). */
  output: string[];
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then wait for the exit (SIGKILL after 20 s). */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal: NodeJS.Signals): void;
}

/**
 * Starts `src/worker/main.ts` as a real child process (node --import tsx, so `pid` is the worker itself) on an
 * ephemeral port with its own workspaces directory, and resolves once it has printed its URL.
 * Rejects with the process's stderr when it exits or prints nothing within 30 s.
 */
export function startReferenceWorkerProcess(
  opts: { env?: Record<string, string> } = {},
): Promise<ReferenceWorkerProcess> {
  const workspaces = mkdtempSync(path.join(os.tmpdir(), "worker-test-"));
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", "src/worker/main.ts"], {
    cwd: ROOT,
    env: {
      ...process.env,
      WORKER_PORT: "0",
      WORKER_HOST: "127.0.0.1",
      WORKER_WORKSPACES_DIR: workspaces,
      ...opts.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  let stderr = "";
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => {
      rmSync(workspaces, { recursive: true, force: true });
      resolve({ code, signal });
    });
  });
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });

  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`Reference worker printed no URL within 30 s. stderr:\n${stderr}`));
    }, 30_000);
    let pending = "";
    let started = false;
    child.stdout?.on("data", (d: Buffer) => {
      pending += d.toString();
      let nl = pending.indexOf("\n");
      while (nl !== -1) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        nl = pending.indexOf("\n");
        output.push(line);
        if (started) continue;
        let url: unknown;
        try {
          url = (JSON.parse(line) as { url?: unknown }).url;
        } catch {
          continue;
        }
        if (typeof url !== "string") continue;
        started = true;
        clearTimeout(timer);
        resolve({
          url,
          pid: child.pid as number,
          output,
          exited,
          kill: (signal) => {
            child.kill(signal);
          },
          async stop() {
            if (child.exitCode === null && child.signalCode === null) {
              child.kill("SIGTERM");
              const force = setTimeout(() => child.kill("SIGKILL"), 20_000);
              const result = await exited;
              clearTimeout(force);
              return result;
            }
            return exited;
          },
        });
      }
    });
    void exited.then(({ code, signal }) => {
      if (started) return;
      clearTimeout(timer);
      reject(
        new Error(`Reference worker exited (code ${code}, signal ${signal}) before listening. stderr:\n${stderr}`),
      );
    });
  });
}

/** A valid execute request for a fresh task; `spec` goes through the real spec schema so defaults apply. */
export function executeRequest(
  spec: Partial<TaskSpecInput> = {},
  opts: { attempt?: number; deadlineMs?: number; taskId?: string } = {},
): ExecuteRequest {
  return {
    protocol: 1,
    taskId: opts.taskId ?? randomUUID(),
    attempt: opts.attempt ?? 1,
    spec: taskSpecSchema.parse({ title: "test task", ...spec }),
    deadline: new Date(Date.now() + (opts.deadlineMs ?? 60_000)).toISOString(),
  };
}

export interface PostOptions {
  token?: string;
  /** Defaults to `<taskId>:<attempt>` of the body; `null` sends none. */
  key?: string | null;
  signal?: AbortSignal;
}

export function postExecute(url: string, body: unknown, opts: PostOptions & { stream?: boolean } = {}) {
  const b = body as { taskId?: string; attempt?: number };
  const key = opts.key === undefined ? `${b.taskId}:${b.attempt}` : opts.key;
  return fetch(`${url}/execute`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(opts.stream ? { accept: "application/x-ndjson" } : {}),
      ...(key !== null ? { "idempotency-key": key } : {}),
      ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
    },
    body: typeof body === "string" ? body : JSON.stringify(body),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
}

/** POST /execute as JSON; checks the answer against the protocol schema. */
export async function execute(url: string, body: ExecuteRequest, opts: PostOptions = {}) {
  const res = await postExecute(url, body, opts);
  if (res.status !== 200) throw new Error(`execute answered ${res.status}: ${await res.text()}`);
  return executeResultSchema.parse(await res.json());
}

export function postCancel(url: string, body: unknown, token?: string) {
  return fetch(`${url}/cancel`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
}

/** Reads an NDJSON answer line by line, each parsed with the protocol schema, calling `onLine` as lines arrive. */
export async function readStream(res: Response, onLine: (line: StreamLine) => void = () => {}): Promise<StreamLine[]> {
  if (!res.body) throw new Error("response has no body");
  const lines: StreamLine[] = [];
  const decoder = new TextDecoder();
  let pending = "";
  const take = (text: string) => {
    if (!text.trim()) return;
    const line = streamLineSchema.parse(JSON.parse(text));
    lines.push(line);
    onLine(line);
  };
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    pending += decoder.decode(value, { stream: true });
    let nl = pending.indexOf("\n");
    while (nl !== -1) {
      take(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
      nl = pending.indexOf("\n");
    }
  }
  take(pending + decoder.decode());
  return lines;
}

/** True while the process exists and is not a zombie (PID 1 in a container may never reap it). */
export function isProcessAlive(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return false;
  }
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  return state !== "Z" && state !== "X";
}

/**
 * Host pids of live processes whose command line starts with `marker` (so not the shells whose script names it). Scripts run in their own PID namespace, so the
 * pid a script prints (`$!`) means nothing outside it: tests find their processes by a unique argument instead.
 */
export function hostPidsWith(marker: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0").join(" ");
    } catch {
      continue;
    }
    if (cmdline.startsWith(marker) && isProcessAlive(Number(name))) pids.push(Number(name));
  }
  return pids;
}

/** A `sleep` command no other test runs, to find with `hostPidsWith`. */
export function uniqueSleep(): string {
  return `sleep 300.${String(Math.floor(Math.random() * 1e6)).padStart(6, "0")}`;
}

/** Polls until `check` holds; fails with `what` after `timeoutMs`. */
export async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000) {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

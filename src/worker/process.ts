import { type ChildProcess, spawn } from "node:child_process";
import type { Readable } from "node:stream";
import { StringDecoder } from "node:string_decoder";

export interface ProcessOptions {
  file: string;
  args: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Host user and group to run as (only a root worker may set them). */
  uid?: number;
  gid?: number;
  /** File descriptors handed to the child as fd 3, 4, …: an open fd, or "pipe" (reachable through `onSpawn`). */
  extraFds?: Array<number | "pipe">;
  /** Written to the child's stdin, which is then closed; without it stdin is /dev/null. */
  stdin?: string;
  /** Called once the child exists, before any output is read; may stop it early through `stop`. */
  onSpawn?(child: ChildProcess, stop: () => void): void;
  /** The group is killed when this passes. */
  timeoutMs: number;
  signal?: AbortSignal;
  /** Between SIGTERM and SIGKILL. */
  killGraceMs: number;
  maxLineChars: number;
  onLine(stream: "stdout" | "stderr", line: string): void;
}

export interface ShellOutcome {
  pid: number | undefined;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  aborted: boolean;
  /** Set when the process could not be started at all. */
  spawnError?: string;
}

/** Splits a byte stream into lines; a line longer than the cap is cut into pieces rather than buffered without end. */
function forwardLines(stream: Readable, maxLineChars: number, onLine: (line: string) => void): void {
  const decoder = new StringDecoder("utf8");
  let pending = "";
  const drain = () => {
    let nl = pending.indexOf("\n");
    while (nl !== -1) {
      onLine(pending.slice(0, nl).replace(/\r$/, ""));
      pending = pending.slice(nl + 1);
      nl = pending.indexOf("\n");
    }
    while (pending.length > maxLineChars) {
      onLine(pending.slice(0, maxLineChars));
      pending = pending.slice(maxLineChars);
    }
  };
  stream.on("data", (chunk: Buffer) => {
    pending += decoder.write(chunk);
    drain();
  });
  stream.on("end", () => {
    pending += decoder.end();
    drain();
    if (pending.length > 0) onLine(pending);
    pending = "";
  });
}

/** Leaders (= group ids) of the process groups started here whose run has not finished. */
const liveGroups = new Set<number>();
let exitHookInstalled = false;

/**
 * Sends `signal` to every process group this process started that is still running (a script, a check or a
 * sandbox's bwrap). Called on the way out: when this process exits by any path that runs 'exit' handlers
 * (process.exit, an uncaught exception, the event loop running dry), every live group gets SIGKILL, so the
 * scripts a worker ran do not outlive it.
 */
export function killLiveProcessGroups(signal: NodeJS.Signals = "SIGKILL"): number {
  let signaled = 0;
  for (const pgid of liveGroups) {
    try {
      process.kill(-pgid, signal);
      signaled++;
    } catch {
      // ESRCH: the group is already empty.
    }
  }
  return signaled;
}

function trackGroup(pgid: number): void {
  liveGroups.add(pgid);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on("exit", () => killLiveProcessGroups("SIGKILL"));
  }
}

/**
 * Runs a process as the leader of its own process group, so a timeout or an abort can stop everything it
 * started (SIGTERM to the group, SIGKILL after the grace period). Processes it leaves behind after exiting are
 * stopped the same way: nothing outlives the run. Nor this process: a group still running when it exits gets
 * SIGKILL (`killLiveProcessGroups`).
 */
export function runProcess(opts: ProcessOptions): Promise<ShellOutcome> {
  return new Promise((resolve) => {
    const outcome: ShellOutcome = { pid: undefined, exitCode: null, signal: null, timedOut: false, aborted: false };
    let child: ChildProcess;
    try {
      child = spawn(opts.file, opts.args, {
        cwd: opts.cwd,
        env: opts.env,
        detached: true,
        stdio: [opts.stdin !== undefined ? "pipe" : "ignore", "pipe", "pipe", ...(opts.extraFds ?? [])],
        ...(opts.uid !== undefined ? { uid: opts.uid } : {}),
        ...(opts.gid !== undefined ? { gid: opts.gid } : {}),
      });
    } catch (err) {
      resolve({ ...outcome, spawnError: (err as Error).message });
      return;
    }
    outcome.pid = child.pid;
    if (child.pid !== undefined) trackGroup(child.pid);
    const timers: NodeJS.Timeout[] = [];
    let settled = false;
    let terminating = false;
    let exited = false;

    const killGroup = (sig: NodeJS.Signals) => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, sig);
      } catch {
        // ESRCH: the group is already empty.
      }
    };
    const terminate = () => {
      if (terminating) return;
      terminating = true;
      killGroup("SIGTERM");
      timers.push(
        setTimeout(() => {
          killGroup("SIGKILL");
          // A process that left the group (setsid) could hold our pipes open forever; stop waiting for it.
          timers.push(
            setTimeout(() => {
              child.stdout?.destroy();
              child.stderr?.destroy();
              finish();
            }, opts.killGraceMs),
          );
        }, opts.killGraceMs),
      );
    };
    const onAbort = () => {
      if (exited) return;
      outcome.aborted = true;
      terminate();
    };
    const finish = () => {
      if (settled) return;
      settled = true;
      if (child.pid !== undefined) liveGroups.delete(child.pid);
      for (const t of timers) clearTimeout(t);
      opts.signal?.removeEventListener("abort", onAbort);
      resolve(outcome);
    };

    opts.onSpawn?.(child, terminate);
    if (opts.stdin !== undefined && child.stdin) {
      // A program that exits without reading all of its input closes the pipe: EPIPE is its business, not an error.
      child.stdin.on("error", () => {});
      child.stdin.end(opts.stdin);
    }
    if (child.stdout) forwardLines(child.stdout, opts.maxLineChars, (l) => opts.onLine("stdout", l));
    if (child.stderr) forwardLines(child.stderr, opts.maxLineChars, (l) => opts.onLine("stderr", l));

    child.on("error", (err) => {
      outcome.spawnError = err.message;
      finish();
    });
    child.on("exit", (code, sig) => {
      exited = true;
      outcome.exitCode = code;
      outcome.signal = sig;
      terminate();
    });
    child.on("close", finish);

    timers.push(
      setTimeout(
        () => {
          if (exited) return;
          outcome.timedOut = true;
          terminate();
        },
        // Beyond 2^31-1 ms setTimeout would fire at once.
        Math.min(Math.max(0, opts.timeoutMs), 2_147_483_647),
      ),
    );
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener("abort", onAbort, { once: true });
  });
}

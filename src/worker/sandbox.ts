import { spawn } from "node:child_process";
import { closeSync, type Dirent, constants as fsConstants, lstatSync, openSync, readlinkSync } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import type { Readable, Writable } from "node:stream";
import type { SandboxState } from "../shared/worker-protocol.js";
import { type ProcessOptions, runProcess, type ShellOutcome } from "./process.js";

/**
 * Runs task scripts (and acceptance-check commands) confined by bubblewrap (`bwrap`, Debian package `bubblewrap`).
 *
 * Inside the sandbox a script sees:
 * - its workspace, read-write, at `/workspace` (its working directory and HOME);
 * - the system toolchain read-only: `/usr`, and `/bin`, `/sbin`, `/lib*` as they exist on the host (symlinks into
 *   `/usr` on merged-/usr systems are recreated as symlinks);
 * - only these host files under `/etc`, read-only, when they exist: SANDBOX_ETC_FILES (plus `/etc/resolv.conf`,
 *   `/etc/hosts` and `/etc/gai.conf` when the network is shared), and generated `/etc/passwd`, `/etc/group` and
 *   (without network) `/etc/hosts` naming only the sandbox's user and localhost;
 * - a private `/tmp` and `/dev/shm` (tmpfs of `limits.tmpBytes` each), a fresh `/proc` of its own PID namespace, a
 *   minimal read-only `/dev` (null, zero, full, random, urandom, tty, pts); everything else read-only;
 * - the environment SANDBOX_BASE_ENV plus the variables the caller passes (nothing of the worker's own);
 * - the run's `readOnlyPaths`, read-only at the same paths (a configured agent's installation, a local repository).
 *
 * A run is a bash script (`command` as a string) or a program with its arguments (an array, as a configured agent
 * runs), with `stdin` as its input when given.
 *
 * It runs as uid/gid 65534 in its own user namespace with every capability dropped, in new IPC, PID, UTS, cgroup
 * and network namespaces (the network namespace has only its own loopback unless the network is allowed, which
 * shares the host's network as it is: bubblewrap has no per-host allowlist), in a new session, and it dies with the
 * worker. When the worker runs as root, bwrap itself is started as host uid/gid 65534 (`hostUid`), so the
 * sandbox's processes are an unprivileged host user too, and the workspace is handed to that user for the run.
 *
 * Limits: `ulimit` in the sandbox's first shell sets RLIMIT_AS (memory, per process), RLIMIT_NPROC (processes;
 * counted per user namespace, so per sandbox; the kernel exempts host root from it, which is why a root worker
 * starts bwrap as 65534), RLIMIT_FSIZE (largest file) and RLIMIT_CORE 0 (no core dumps in the workspace). A watchdog samples the sandbox every `watchIntervalMs`: its processes (count and total resident
 * memory) and the workspace's total bytes and file count; over a limit it stops the sandbox and says which limit.
 * The wall-time limit is the caller's `timeoutMs`. Stopping the sandbox signals bwrap, whose death takes every
 * process in the sandbox with it (--die-with-parent, PID namespace): a script gets no grace period to clean up.
 */

export type SandboxMode = "bubblewrap" | "off";
export type SandboxNetwork = "none" | "allow";

export interface SandboxLimits {
  /** RLIMIT_AS of every process, and the sampled total resident memory of the sandbox. */
  memoryBytes: number;
  /** RLIMIT_NPROC inside the sandbox (its processes, the sandbox's init included). */
  maxProcesses: number;
  /** RLIMIT_FSIZE: the largest file a process may write. */
  maxFileBytes: number;
  /** Sampled: total bytes of the regular files in the workspace. */
  maxWorkspaceBytes: number;
  /** Sampled: entries (files, directories, links) in the workspace. */
  maxWorkspaceFiles: number;
  /** Size of the private /tmp, and of /dev/shm (each memory-backed). */
  tmpBytes: number;
}

const MiB = 1024 * 1024;
export const DEFAULT_SANDBOX_LIMITS: SandboxLimits = {
  memoryBytes: 2048 * MiB,
  maxProcesses: 256,
  maxFileBytes: 1024 * MiB,
  maxWorkspaceBytes: 2048 * MiB,
  maxWorkspaceFiles: 100_000,
  tmpBytes: 256 * MiB,
};

/** Where the workspace appears inside the sandbox. */
export const SANDBOX_WORKSPACE = "/workspace";
/** The sandbox's user (and group) inside, and on the host when the worker runs as root. */
export const SANDBOX_UID = 65534;

/** Every script's environment before the caller's variables (TASK_ID, TASK_ATTEMPT, the worker's configured env). */
export const SANDBOX_BASE_ENV: Readonly<Record<string, string>> = {
  PATH: "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
  HOME: SANDBOX_WORKSPACE,
  USER: "nobody",
  LOGNAME: "nobody",
  SHELL: "/bin/bash",
  LANG: "C.UTF-8",
  TMPDIR: "/tmp",
  WORKSPACE: SANDBOX_WORKSPACE,
};

/** Host files under /etc a toolchain needs: the dynamic linker's cache, Debian's alternatives, TLS roots, time zone. */
export const SANDBOX_ETC_FILES = [
  "/etc/ld.so.cache",
  "/etc/ld.so.conf",
  "/etc/ld.so.conf.d",
  "/etc/alternatives",
  "/etc/localtime",
  "/etc/nsswitch.conf",
  "/etc/ssl/certs",
  "/etc/ca-certificates",
  "/etc/mime.types",
];
const SANDBOX_NETWORK_ETC_FILES = ["/etc/resolv.conf", "/etc/hosts", "/etc/gai.conf"];
/** Top-level toolchain directories next to /usr; on merged-/usr systems they are symlinks into it. */
const TOOLCHAIN_ROOTS = ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

export type LimitKind = "memory" | "processes" | "file_size" | "workspace_size" | "workspace_files";

export interface LimitHit {
  kind: LimitKind;
  /** Which limit, its value, and the evidence that it was hit. */
  message: string;
}

export interface ScriptRun {
  /** A string runs as `bash -c command`; an array is a program and its arguments, run directly (looked up in PATH). */
  command: string | readonly string[];
  /** Written to the program's stdin; without it stdin is /dev/null. */
  stdin?: string;
  /** Host directories (or files) made visible read-only at the same path inside the sandbox. */
  readOnlyPaths?: readonly string[];
  /** The workspace directory on the host (its real path). */
  workspaceRoot: string;
  /** Variables on top of SANDBOX_BASE_ENV (or, unconfined, the worker's PATH/HOME/LANG…). */
  env: Record<string, string>;
  /** The task asks for network access. */
  network?: boolean;
  /**
   * The network is granted by the worker's own configuration (a configured agent command, a git fetch from an
   * allowed host), not asked for by a task: WORKER_SANDBOX_NETWORK does not apply to this run.
   */
  networkGrantedByWorker?: boolean;
  timeoutMs: number;
  signal?: AbortSignal;
  killGraceMs: number;
  maxLineChars: number;
  onLine(stream: "stdout" | "stderr", line: string): void;
}

export interface ScriptOutcome extends ShellOutcome {
  limit?: LimitHit;
}

export type SandboxStatus =
  | { mode: "bubblewrap"; ready: true }
  | { mode: "bubblewrap"; ready: false; reason: string }
  | { mode: "off" };

/** The sandbox cannot start, or the task asks for what this worker does not allow. */
export class SandboxRefusedError extends Error {
  override readonly name = "SandboxRefusedError";
  constructor(
    readonly code: "sandbox_unavailable" | "network_not_allowed",
    message: string,
  ) {
    super(message);
  }
}

export interface SandboxOptions {
  /** Default "bubblewrap"; "off" runs scripts unconfined with the worker's privileges. */
  mode?: SandboxMode;
  /** Default "bwrap" (looked up in PATH). */
  bwrapPath?: string;
  /** Default "none": a task asking for network is refused. */
  network?: SandboxNetwork;
  limits?: Partial<SandboxLimits>;
  /** Host uid/gid the sandbox runs as when the worker is root; default 65534. */
  hostUid?: number;
  hostGid?: number;
  /** Watchdog sampling period; default 250 ms. */
  watchIntervalMs?: number;
}

export interface ScriptSandbox {
  readonly mode: SandboxMode;
  /** For `/health`: "bubblewrap", "off", or "unavailable" when bubblewrap cannot start. */
  state(): Promise<SandboxState>;
  readonly network: SandboxNetwork;
  readonly limits: Readonly<SandboxLimits>;
  /** Probes bubblewrap once (a trivial sandboxed command) and remembers the answer. */
  status(): Promise<SandboxStatus>;
  /** Runs `bash -c command` (or an argv); throws `SandboxRefusedError` when it cannot run confined as configured. */
  run(run: ScriptRun): Promise<ScriptOutcome>;
}

/** Variables an unconfined script inherits from the worker (`WORKER_SANDBOX=off`): no token, no secrets. */
const UNCONFINED_INHERITED_ENV = ["PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "TZ", "TERM", "TMPDIR"];

export function sandboxUnavailableMessage(reason: string): string {
  return (
    `The script sandbox (bubblewrap) cannot start: ${reason}. Install it with 'apt-get install bubblewrap' ` +
    "(user namespaces must be enabled), or run scripts unconfined with WORKER_SANDBOX=off (not recommended: " +
    "scripts then see everything the worker's user can)"
  );
}

const errnoCode = (err: unknown) =>
  typeof err === "object" && err !== null && "code" in err ? String((err as { code: unknown }).code) : undefined;

/** Namespaces, user and capabilities of every sandbox (and of the probe, so the probe fails where a run would). */
const ISOLATION_ARGS = [
  "--unshare-all",
  "--die-with-parent",
  "--new-session",
  "--cap-drop",
  "ALL",
  "--uid",
  String(SANDBOX_UID),
  "--gid",
  String(SANDBOX_UID),
];

/** Runs `bwrap` once with the same namespaces and user the scripts get; resolves with why it failed, or undefined. */
function probeBubblewrap(bwrapPath: string, asRoot: boolean, uid: number, gid: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    let stderr = "";
    const args = [
      ...ISOLATION_ARGS,
      "--ro-bind",
      "/usr",
      "/usr",
      ...toolchainArgsSync(),
      "--proc",
      "/proc",
      "--dev",
      "/dev",
      "--",
      "/bin/sh",
      "-c",
      "exit 0",
    ];
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(bwrapPath, args, {
        env: {},
        stdio: ["ignore", "ignore", "pipe"],
        ...(asRoot ? { uid, gid } : {}),
      });
    } catch (err) {
      resolve(`could not start '${bwrapPath}': ${(err as Error).message}`);
      return;
    }
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    child.stderr?.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2_000);
    });
    child.on("error", (err) => {
      clearTimeout(timer);
      resolve(
        errnoCode(err) === "ENOENT"
          ? `'${bwrapPath}' was not found`
          : `could not start '${bwrapPath}': ${(err as Error).message}`,
      );
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(undefined);
      else
        resolve(`a trial run of '${bwrapPath}' failed (${signal ?? `exit ${code}`}): ${stderr.trim() || "no output"}`);
    });
  });
}

let toolchainCache: string[] | undefined;
/** `--symlink` for the toolchain roots that are symlinks (merged /usr), `--ro-bind` for real directories. */
function toolchainArgsSync(): string[] {
  if (toolchainCache) return toolchainCache;
  const args: string[] = [];
  for (const dir of TOOLCHAIN_ROOTS) {
    try {
      const stat = lstatSync(dir);
      if (stat.isSymbolicLink()) args.push("--symlink", readlinkSync(dir), dir);
      else if (stat.isDirectory()) args.push("--ro-bind", dir, dir);
    } catch {
      // Absent on this system (lib32, libx32 usually are).
    }
  }
  toolchainCache = args;
  return args;
}

/** Hands every entry of the workspace (links themselves, not their targets) to the sandbox's host user. */
async function chownTree(dir: string, uid: number, gid: number): Promise<void> {
  await fs.lchown(dir, uid, gid);
  const entries = await fs.readdir(dir, { withFileTypes: true });
  for (const entry of entries) {
    const abs = path.join(dir, entry.name);
    if (entry.isDirectory()) await chownTree(abs, uid, gid);
    else await fs.lchown(abs, uid, gid);
  }
}

/**
 * bwrap resolves the workspace's path as the sandbox's host user, so that user must be able to pass through the
 * directories above it: the task's directory and the workspaces directory (the SDK's `<dir>/<taskId>/<attempt>`
 * layout) get the search bit for others (0711: no listing), when they are ours. The workspace itself stays 0700,
 * owned by the sandbox's user.
 */
async function allowTraversal(workspaceRoot: string): Promise<void> {
  const uid = process.getuid?.();
  let dir = path.dirname(workspaceRoot);
  for (let level = 0; level < 2 && dir !== path.dirname(dir); level++, dir = path.dirname(dir)) {
    const stat = await fs.stat(dir);
    if (stat.uid !== uid || (stat.mode & 0o001) !== 0) continue;
    await fs.chmod(dir, (stat.mode & 0o7777) | 0o011);
  }
}

interface WorkspaceUsage {
  bytes: number;
  entries: number;
}

/** Sums the regular files' sizes; stops counting once past `maxEntries` (that alone is over the limit). */
async function workspaceUsage(root: string, maxEntries: number): Promise<WorkspaceUsage> {
  const usage: WorkspaceUsage = { bytes: 0, entries: 0 };
  const stack = [root];
  while (stack.length && usage.entries <= maxEntries) {
    const dir = stack.pop() as string;
    let entries: Dirent[];
    try {
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const entry of entries) {
      usage.entries++;
      const abs = path.join(dir, entry.name);
      if (entry.isDirectory()) stack.push(abs);
      else if (entry.isFile()) {
        const stat = await fs.lstat(abs).catch(() => undefined);
        if (stat) usage.bytes += stat.size;
      }
    }
  }
  return usage;
}

interface SandboxProcesses {
  count: number;
  residentBytes: number;
}

const PAGE_SIZE = 4096;
/** The host's processes in the sandbox's PID namespace, found by the namespace's inode. */
async function sandboxProcesses(pidNamespace: number): Promise<SandboxProcesses> {
  const want = `pid:[${pidNamespace}]`;
  const result: SandboxProcesses = { count: 0, residentBytes: 0 };
  const names = await fs.readdir("/proc").catch(() => [] as string[]);
  await Promise.all(
    names.map(async (name) => {
      if (!/^\d+$/.test(name)) return;
      const ns = await fs.readlink(`/proc/${name}/ns/pid`).catch(() => undefined);
      if (ns !== want) return;
      result.count++;
      const statm = await fs.readFile(`/proc/${name}/statm`, "utf8").catch(() => "");
      const resident = Number(statm.split(" ")[1]);
      if (Number.isFinite(resident)) result.residentBytes += resident * PAGE_SIZE;
    }),
  );
  return result;
}

const formatBytes = (n: number) =>
  n >= 1024 * MiB && n % (1024 * MiB) === 0
    ? `${n / (1024 * MiB)} GiB`
    : n >= MiB
      ? `${Math.round((n / MiB) * 10) / 10} MiB`
      : `${n} bytes`;

const FORK_FAILURE = /\bfork: (?:retry: )?(?:Resource temporarily unavailable|Cannot allocate memory)/;
const FILE_TOO_LARGE = /File size limit exceeded|File too large/;
const MEMORY_FAILURE =
  /Cannot allocate memory|cannot allocate \d+ bytes|MemoryError|out of memory|std::bad_alloc|memory exhausted|xmalloc: cannot allocate/i;
const SIGXFSZ_EXIT = 128 + 25;

/** Reads the sandbox's limit from how it ended: a signal's exit status, or what the failing tools said. */
function limitFromEvidence(
  outcome: ShellOutcome,
  seen: { fork: boolean; fileTooLarge: boolean; memory: boolean },
  limits: SandboxLimits,
): LimitHit | undefined {
  if (outcome.exitCode === 0 || outcome.timedOut || outcome.aborted || outcome.spawnError) return undefined;
  if (outcome.exitCode === SIGXFSZ_EXIT || seen.fileTooLarge) {
    return {
      kind: "file_size",
      message: `a file reached the sandbox's file size limit of ${formatBytes(limits.maxFileBytes)} (RLIMIT_FSIZE: ${
        outcome.exitCode === SIGXFSZ_EXIT ? "the script was killed by SIGXFSZ" : "a write failed with 'File too large'"
      })`,
    };
  }
  if (seen.fork) {
    return {
      kind: "processes",
      message: `the sandbox's process limit of ${limits.maxProcesses} processes was reached (RLIMIT_NPROC: fork failed)`,
    };
  }
  if (seen.memory) {
    return {
      kind: "memory",
      message: `a process could not allocate memory: the sandbox's memory limit is ${formatBytes(
        limits.memoryBytes,
      )} per process (RLIMIT_AS)`,
    };
  }
  return undefined;
}

export function createScriptSandbox(options: SandboxOptions = {}): ScriptSandbox {
  const mode = options.mode ?? "bubblewrap";
  const network = options.network ?? "none";
  const bwrapPath = options.bwrapPath ?? "bwrap";
  const limits: SandboxLimits = { ...DEFAULT_SANDBOX_LIMITS, ...options.limits };
  const hostUid = options.hostUid ?? SANDBOX_UID;
  const hostGid = options.hostGid ?? SANDBOX_UID;
  const watchIntervalMs = options.watchIntervalMs ?? 250;
  const asRoot = process.getuid?.() === 0;
  let probed: Promise<SandboxStatus> | undefined;

  const status = (): Promise<SandboxStatus> => {
    if (mode === "off") return Promise.resolve({ mode: "off" });
    probed ??= probeBubblewrap(bwrapPath, asRoot, hostUid, hostGid).then(
      (reason): SandboxStatus => (reason ? { mode, ready: false, reason } : { mode, ready: true }),
    );
    return probed;
  };

  const runUnconfined = (run: ScriptRun): Promise<ScriptOutcome> => {
    const env: NodeJS.ProcessEnv = {};
    for (const name of UNCONFINED_INHERITED_ENV) if (process.env[name] !== undefined) env[name] = process.env[name];
    const [file, ...args] = typeof run.command === "string" ? ["bash", "-c", run.command] : run.command;
    return runProcess({
      file: file as string,
      args,
      cwd: run.workspaceRoot,
      ...(run.stdin !== undefined ? { stdin: run.stdin } : {}),
      env: { ...env, ...run.env, WORKSPACE: run.workspaceRoot },
      timeoutMs: run.timeoutMs,
      ...(run.signal ? { signal: run.signal } : {}),
      killGraceMs: run.killGraceMs,
      maxLineChars: run.maxLineChars,
      onLine: run.onLine,
    });
  };

  const runConfined = async (run: ScriptRun): Promise<ScriptOutcome> => {
    if (asRoot) {
      await chownTree(run.workspaceRoot, hostUid, hostGid);
      await allowTraversal(run.workspaceRoot);
    }
    const env: Record<string, string> = { ...SANDBOX_BASE_ENV, ...run.env, WORKSPACE: SANDBOX_WORKSPACE };
    const shareNet = run.network === true && (network === "allow" || run.networkGrantedByWorker === true);
    const etcArgs = [...SANDBOX_ETC_FILES, ...(shareNet ? SANDBOX_NETWORK_ETC_FILES : [])].flatMap((f) => [
      "--ro-bind-try",
      f,
      f,
    ]);
    // fd 3: the workspace directory, opened (without following a symlink) before bwrap starts; fd 4-6: generated
    // /etc files; fd 7: bwrap's info (the sandbox's PID namespace, for the watchdog).
    const workspaceFd = openSync(
      run.workspaceRoot,
      fsConstants.O_RDONLY | fsConstants.O_DIRECTORY | fsConstants.O_NOFOLLOW,
    );
    let fdClosed = false;
    const closeWorkspaceFd = () => {
      if (fdClosed) return;
      fdClosed = true;
      closeSync(workspaceFd);
    };
    const passwd = `root:x:0:0:root:/:/usr/sbin/nologin\nnobody:x:${SANDBOX_UID}:${SANDBOX_UID}:sandbox:${SANDBOX_WORKSPACE}:/bin/bash\n`;
    const group = `root:x:0:\nnogroup:x:${SANDBOX_UID}:\n`;
    const hosts = "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n";
    const kib = (n: number) => String(Math.max(1, Math.floor(n / 1024)));
    const args = [
      ...ISOLATION_ARGS,
      ...(shareNet ? ["--share-net"] : []),
      "--hostname",
      "sandbox",
      "--ro-bind",
      "/usr",
      "/usr",
      ...toolchainArgsSync(),
      ...etcArgs,
      "--perms",
      "0644",
      "--ro-bind-data",
      "4",
      "/etc/passwd",
      "--perms",
      "0644",
      "--ro-bind-data",
      "5",
      "/etc/group",
      ...(shareNet ? [] : ["--perms", "0644", "--ro-bind-data", "6", "/etc/hosts"]),
      "--proc",
      "/proc",
      "--dev",
      "/dev",
      // bwrap's /dev is a tmpfs of half the host's memory: /dev/shm gets a bounded one of its own and the rest of
      // /dev becomes read-only below (device nodes stay usable).
      "--size",
      String(limits.tmpBytes),
      "--tmpfs",
      "/dev/shm",
      "--size",
      String(limits.tmpBytes),
      "--tmpfs",
      "/tmp",
      // After /tmp's tmpfs, so that a path under /tmp is not hidden by it.
      ...(run.readOnlyPaths ?? []).flatMap((p) => ["--ro-bind", p, p]),
      "--bind-fd",
      "3",
      SANDBOX_WORKSPACE,
      // The sandbox's own root (where /etc's files and the mount points live) becomes read-only too; /tmp and the
      // workspace are separate mounts and stay writable.
      "--remount-ro",
      "/",
      "--remount-ro",
      "/dev",
      "--chdir",
      SANDBOX_WORKSPACE,
      "--info-fd",
      "7",
      "--clearenv",
      ...Object.entries(env).flatMap(([k, v]) => ["--setenv", k, v]),
      "--",
      "/bin/bash",
      "-c",
      // bash's ulimit counts -v and -f in KiB; setting both soft and hard limits means the script cannot raise them.
      'ulimit -c 0 -v "$1" -u "$2" -f "$3" || exit 126; shift 3; exec "$@"',
      "sandbox-limits",
      kib(limits.memoryBytes),
      String(limits.maxProcesses),
      kib(limits.maxFileBytes),
      ...(typeof run.command === "string" ? ["/bin/bash", "-c", run.command] : run.command),
    ];

    const seen = { fork: false, fileTooLarge: false, memory: false };
    let watchdogHit: LimitHit | undefined;
    let watchTimer: NodeJS.Timeout | undefined;
    const onSpawn: ProcessOptions["onSpawn"] = (child, stop) => {
      closeWorkspaceFd();
      const stdio = child.stdio as unknown as Array<Readable | Writable | null | undefined>;
      const writeData = (fd: number, text: string) => {
        const stream = stdio[fd] as Writable | null | undefined;
        stream?.on("error", () => {});
        stream?.end(text);
      };
      writeData(4, passwd);
      writeData(5, group);
      writeData(6, hosts);
      let info = "";
      let pidNamespace: number | undefined;
      const infoStream = stdio[7] as Readable | null | undefined;
      infoStream?.on("error", () => {});
      infoStream?.on("data", (d: Buffer) => {
        info += d.toString();
        const match = /"pid-namespace"\s*:\s*(\d+)/.exec(info);
        if (match) pidNamespace = Number(match[1]);
      });
      const hit = (limit: LimitHit) => {
        if (watchdogHit) return;
        watchdogHit = limit;
        stop();
      };
      let sampling = false;
      watchTimer = setInterval(() => {
        if (sampling || watchdogHit) return;
        sampling = true;
        void (async () => {
          try {
            if (pidNamespace !== undefined) {
              const procs = await sandboxProcesses(pidNamespace);
              if (procs.count >= limits.maxProcesses) {
                hit({
                  kind: "processes",
                  message: `the sandbox reached its process limit of ${limits.maxProcesses} processes (RLIMIT_NPROC; ${procs.count} running when sampled)`,
                });
              } else if (procs.residentBytes > limits.memoryBytes) {
                hit({
                  kind: "memory",
                  message: `the sandbox's processes together used ${formatBytes(procs.residentBytes)} of memory, over its limit of ${formatBytes(limits.memoryBytes)}`,
                });
              }
            }
            const usage = await workspaceUsage(run.workspaceRoot, limits.maxWorkspaceFiles);
            if (usage.entries > limits.maxWorkspaceFiles) {
              hit({
                kind: "workspace_files",
                message: `the workspace holds more than ${limits.maxWorkspaceFiles} files and directories, its limit`,
              });
            } else if (usage.bytes > limits.maxWorkspaceBytes) {
              hit({
                kind: "workspace_size",
                message: `the workspace's files reached ${formatBytes(usage.bytes)}, over its limit of ${formatBytes(limits.maxWorkspaceBytes)}`,
              });
            }
          } finally {
            sampling = false;
          }
        })();
      }, watchIntervalMs);
    };

    let outcome: ShellOutcome;
    try {
      outcome = await runProcess({
        file: bwrapPath,
        args,
        cwd: "/",
        // bwrap stays the sandbox's PID 1: an empty environment, so /proc/1/environ holds nothing of the worker's.
        env: {},
        ...(asRoot ? { uid: hostUid, gid: hostGid } : {}),
        extraFds: [workspaceFd, "pipe", "pipe", "pipe", "pipe"],
        ...(run.stdin !== undefined ? { stdin: run.stdin } : {}),
        onSpawn,
        timeoutMs: run.timeoutMs,
        ...(run.signal ? { signal: run.signal } : {}),
        killGraceMs: run.killGraceMs,
        maxLineChars: run.maxLineChars,
        onLine(stream, line) {
          if (stream === "stderr") {
            if (!seen.fork && FORK_FAILURE.test(line)) seen.fork = true;
            if (!seen.fileTooLarge && FILE_TOO_LARGE.test(line)) seen.fileTooLarge = true;
            if (!seen.memory && MEMORY_FAILURE.test(line)) seen.memory = true;
          }
          run.onLine(stream, line);
        },
      });
    } finally {
      closeWorkspaceFd();
      if (watchTimer) clearInterval(watchTimer);
    }
    // The time limit and a cancel are the caller's to report; a limit the watchdog enforced is the reason otherwise.
    if (outcome.timedOut || outcome.aborted) return outcome;
    const limit = watchdogHit ?? limitFromEvidence(outcome, seen, limits);
    return limit ? { ...outcome, limit } : outcome;
  };

  return {
    mode,
    network,
    limits,
    status,
    async state() {
      const current = await status();
      return current.mode === "off" ? "off" : current.ready ? "bubblewrap" : "unavailable";
    },
    async run(run) {
      if (mode === "off") return runUnconfined(run);
      const current = await status();
      if (current.mode === "bubblewrap" && !current.ready) {
        throw new SandboxRefusedError("sandbox_unavailable", sandboxUnavailableMessage(current.reason));
      }
      if (run.network && network !== "allow" && !run.networkGrantedByWorker) {
        throw new SandboxRefusedError(
          "network_not_allowed",
          "The task asks for network access (spec.input.network) but this worker does not allow it " +
            "(WORKER_SANDBOX_NETWORK=none); scripts run without network here",
        );
      }
      return runConfined(run);
    },
  };
}

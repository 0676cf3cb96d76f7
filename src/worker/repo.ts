import { realpathSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { RepoSpec } from "../shared/task-spec.js";
import type { ScriptSandbox } from "./sandbox.js";
import { SandboxRefusedError } from "./sandbox.js";

/**
 * A task's `repo` checked out into its workspace before the script or agent runs. The fetch itself runs in the
 * sandbox like any script (git with no system or global configuration, no credential helper, no prompt, no redirects,
 * only the one protocol the URL uses), so a hostile repository or server meets the same walls as the task's code.
 * Which repositories may be fetched is this worker's decision: https URLs of WORKER_GIT_ALLOWED_HOSTS (a host and its
 * subdomains), or local repositories (a path or file:// URL) under WORKER_GIT_LOCAL_ROOTS, made visible read-only.
 */

export interface RepoPolicy {
  allowedHosts: readonly string[];
  localRoots: readonly string[];
  /** Never a source, even under a local root: it holds other tasks' workspaces. */
  workspacesDir: string;
}

export type RepoSource = { kind: "https"; url: string } | { kind: "local"; path: string };

export class RepoRefusedError extends Error {
  override readonly name = "RepoRefusedError";
  readonly code = "repo_not_allowed";
}

const hostAllowed = (url: URL, allowed: readonly string[]) =>
  allowed.some((entry) => {
    const host = entry.includes(":") ? url.host : url.hostname;
    return host === entry || host.endsWith(`.${entry}`);
  });

/** Where `repo` would be fetched from, when this worker allows it; throws a RepoRefusedError saying why not. */
export function repoSource(repo: RepoSpec, policy: RepoPolicy): RepoSource {
  const local = repo.url.startsWith("/") ? repo.url : repo.url.startsWith("file:") ? fileURLToPath(repo.url) : null;
  if (local !== null) {
    if (!policy.localRoots.length) {
      throw new RepoRefusedError(
        "Local repositories (a path or file:// URL) are refused by this worker: it names no WORKER_GIT_LOCAL_ROOTS",
      );
    }
    let real: string;
    try {
      real = realpathSync(path.resolve(local));
    } catch {
      throw new RepoRefusedError(`The local repository ${repo.url} does not exist on this worker`);
    }
    const roots = policy.localRoots.map((r) => {
      try {
        return realpathSync(r);
      } catch {
        return r;
      }
    });
    if (!roots.some((root) => real === root || real.startsWith(`${root}/`))) {
      throw new RepoRefusedError(
        `The local repository ${repo.url} is outside this worker's WORKER_GIT_LOCAL_ROOTS (${policy.localRoots.join(", ")})`,
      );
    }
    let workspaces = path.resolve(policy.workspacesDir);
    try {
      workspaces = realpathSync(workspaces);
    } catch {
      // Not created yet: nothing can be inside it.
    }
    if (real === workspaces || real.startsWith(`${workspaces}/`) || workspaces.startsWith(`${real}/`)) {
      throw new RepoRefusedError(`The local repository ${repo.url} is in or above this worker's workspaces directory`);
    }
    return { kind: "local", path: real };
  }
  const url = new URL(repo.url);
  if (url.protocol !== "https:" || url.username || url.password) {
    throw new RepoRefusedError("Only https:// repository URLs without credentials are fetched");
  }
  if (!hostAllowed(url, policy.allowedHosts)) {
    throw new RepoRefusedError(
      `The repository host ${url.host} is not in this worker's WORKER_GIT_ALLOWED_HOSTS (${
        policy.allowedHosts.join(", ") || "none"
      })`,
    );
  }
  return { kind: "https", url: url.href };
}

/** Fetches the one commit and checks it out detached in the workspace (which must be empty); prints its id last. */
const CHECKOUT_SCRIPT = [
  "set -e",
  "git init -q .",
  'git remote add origin "$AGENT_REPO_URL"',
  'git fetch -q --depth 1 --no-tags origin "$AGENT_REPO_REF"',
  "git checkout -q --detach FETCH_HEAD",
  "git rev-parse HEAD",
].join("\n");

export interface CheckoutOptions {
  sandbox: ScriptSandbox;
  workspaceRoot: string;
  timeoutMs: number;
  killGraceMs: number;
  signal: AbortSignal;
  log(stream: "stdout" | "stderr" | "info", line: string): void;
}

export type CheckoutResult =
  | { ok: true; commit: string }
  | { ok: false; code: string; message: string; timedOut?: boolean; aborted?: boolean };

export async function checkoutRepo(source: RepoSource, ref: string, opts: CheckoutOptions): Promise<CheckoutResult> {
  const protocol = source.kind === "https" ? "https" : "file";
  const config: Array<[string, string]> = [
    ["http.followRedirects", "false"],
    ["credential.helper", ""],
    ["core.hooksPath", "/dev/null"],
    ["init.defaultBranch", "main"],
    ["advice.detachedHead", "false"],
    // The local repository belongs to another user than the sandbox's; reading it is all that happens.
    ["safe.directory", "*"],
  ];
  const env: Record<string, string> = {
    AGENT_REPO_URL: source.kind === "https" ? source.url : source.path,
    AGENT_REPO_REF: ref,
    HOME: "/tmp",
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: "/dev/null",
    GIT_TERMINAL_PROMPT: "0",
    GIT_ASKPASS: "/bin/false",
    GIT_ALLOW_PROTOCOL: protocol,
    GIT_CONFIG_COUNT: String(config.length),
    ...Object.fromEntries(
      config.flatMap(([k, v], i) => [[`GIT_CONFIG_KEY_${i}`, k] as const, [`GIT_CONFIG_VALUE_${i}`, v] as const]),
    ),
  };
  let commit = "";
  let stderrTail = "";
  try {
    const outcome = await opts.sandbox.run({
      command: CHECKOUT_SCRIPT,
      workspaceRoot: opts.workspaceRoot,
      env,
      network: source.kind === "https",
      networkGrantedByWorker: true,
      ...(source.kind === "local" ? { readOnlyPaths: [source.path] } : {}),
      timeoutMs: opts.timeoutMs,
      signal: opts.signal,
      killGraceMs: opts.killGraceMs,
      maxLineChars: 10_000,
      onLine(stream, line) {
        if (stream === "stdout") commit = line.trim();
        else stderrTail = `${stderrTail}${line}\n`.slice(-2_000);
        opts.log(stream, `git: ${line}`);
      },
    });
    const where = source.kind === "https" ? source.url : source.path;
    if (outcome.aborted) return { ok: false, code: "canceled", message: "Stopped while checking out", aborted: true };
    if (outcome.timedOut) {
      return { ok: false, code: "repo_checkout_failed", message: `Checking out ${where} timed out`, timedOut: true };
    }
    if (outcome.exitCode !== 0 || !/^[0-9a-f]{40,64}$/.test(commit)) {
      return {
        ok: false,
        code: "repo_checkout_failed",
        message: `Could not check out ${ref} of ${where}: ${stderrTail.trim() || `git exited with code ${outcome.exitCode}`}`,
      };
    }
    return { ok: true, commit };
  } catch (err) {
    if (err instanceof SandboxRefusedError) return { ok: false, code: err.code, message: err.message };
    throw err;
  }
}

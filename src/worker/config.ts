import os from "node:os";
import path from "node:path";
import { z } from "zod";
import { HEARTBEAT_EVERY_MS } from "../shared/worker-protocol.js";
import type { SandboxOptions } from "./sandbox.js";

const capabilityName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, "each capability may contain only a-z, 0-9, '.', '_' and '-'");

const workerEnvSchema = z.object({
  WORKER_PORT: z.coerce.number().int().min(0).max(65_535).default(4100),
  WORKER_HOST: z.string().min(1).default("127.0.0.1"),
  /** When set, every execute and cancel request must carry `Authorization: Bearer <token>`. */
  WORKER_TOKEN: z
    .string()
    .optional()
    .transform((v) => (v ? v : undefined)),
  WORKER_CAPABILITIES: z
    .string()
    .default("script")
    .transform((v) =>
      v
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean),
    )
    // Empty is allowed when WORKER_AGENTS or WORKER_AGENTS_FILE names agents: a worker that only runs agents.
    .pipe(z.array(capabilityName)),
  WORKER_MAX_CONCURRENCY: z.coerce.number().int().min(1).max(1_000).default(4),
  WORKER_WORKSPACES_DIR: z.string().min(1).default(path.join(os.tmpdir(), "agent-agency-workspaces")),
  WORKER_NAME: z.string().min(1).max(100).default("reference"),
  /** Between SIGTERM and SIGKILL when a script's process group is stopped. */
  WORKER_KILL_GRACE_MS: z.coerce.number().int().min(0).max(60_000).default(2_000),
  WORKER_CHECK_TIMEOUT_SEC: z.coerce.number().int().min(1).max(86_400).default(60),
  /**
   * A streamed /execute answer that has been quiet this long gets a heartbeat line (protocol v1), so the agency's
   * idle timeout (the tier's tryTimeoutMs) does not end a script that is working without output. 0 sends none.
   */
  WORKER_HEARTBEAT_MS: z.coerce.number().int().min(0).max(2_147_483_647).default(HEARTBEAT_EVERY_MS),
  /**
   * How long a run goes on once every client waiting for it disconnected, so an agency that restarted re-attaches to
   * it by its Idempotency-Key instead of running it again. 0 aborts at once.
   */
  WORKER_DETACHED_GRACE_MS: z.coerce.number().int().min(0).max(2_147_483_647).default(60_000),
  WORKER_LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  /** "bubblewrap": every script and check runs in a bwrap sandbox (refused when bwrap cannot start); "off": unconfined. */
  WORKER_SANDBOX: z.enum(["bubblewrap", "off"], { error: "must be 'bubblewrap' or 'off'" }).default("bubblewrap"),
  WORKER_SANDBOX_BWRAP: z.string().min(1).default("bwrap"),
  /** "allow": a task with spec.input.network: true shares the host's network (no per-host allowlist). */
  WORKER_SANDBOX_NETWORK: z.enum(["none", "allow"], { error: "must be 'none' or 'allow'" }).default("none"),
  WORKER_SANDBOX_MEMORY_MB: z.coerce.number().int().min(16).max(1_048_576).default(2_048),
  WORKER_SANDBOX_MAX_PROCESSES: z.coerce.number().int().min(4).max(100_000).default(256),
  WORKER_SANDBOX_MAX_FILE_MB: z.coerce.number().int().min(1).max(1_048_576).default(1_024),
  WORKER_SANDBOX_MAX_WORKSPACE_MB: z.coerce.number().int().min(1).max(1_048_576).default(2_048),
  WORKER_SANDBOX_MAX_WORKSPACE_FILES: z.coerce.number().int().min(10).max(10_000_000).default(100_000),
  WORKER_SANDBOX_TMP_MB: z.coerce.number().int().min(1).max(1_048_576).default(256),
  /** Command-line agents, one per capability, as JSON (`agents.ts`); or WORKER_AGENTS_FILE, the path of such a file. */
  WORKER_AGENTS: z
    .string()
    .optional()
    .transform((v) => (v?.trim() ? v : undefined)),
  WORKER_AGENTS_FILE: z
    .string()
    .optional()
    .transform((v) => (v?.trim() ? v : undefined)),
  /** Hosts a task's `repo` (https) may be checked out from; a host matches itself and its subdomains. */
  WORKER_GIT_ALLOWED_HOSTS: z
    .string()
    .default("github.com,gitlab.com,bitbucket.org,codeberg.org")
    .transform((v) =>
      v
        .split(",")
        .map((s) => s.trim().toLowerCase())
        .filter(Boolean),
    )
    .pipe(z.array(z.string().regex(/^[a-z0-9.-]+(?::\d+)?$/, "each host must be a host name, optionally with :port"))),
  /** Directories whose git repositories a task's `repo` may name by path or file:// URL; none by default. */
  WORKER_GIT_LOCAL_ROOTS: z
    .string()
    .default("")
    .transform((v) =>
      v
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.string().startsWith("/", "each local root must be an absolute path"))),
});

export type WorkerConfig = z.output<typeof workerEnvSchema>;

const MiB = 1024 * 1024;
/** The sandbox options the WORKER_SANDBOX* variables describe. */
export function sandboxOptionsFrom(config: WorkerConfig): SandboxOptions {
  return {
    mode: config.WORKER_SANDBOX,
    bwrapPath: config.WORKER_SANDBOX_BWRAP,
    network: config.WORKER_SANDBOX_NETWORK,
    limits: {
      memoryBytes: config.WORKER_SANDBOX_MEMORY_MB * MiB,
      maxProcesses: config.WORKER_SANDBOX_MAX_PROCESSES,
      maxFileBytes: config.WORKER_SANDBOX_MAX_FILE_MB * MiB,
      maxWorkspaceBytes: config.WORKER_SANDBOX_MAX_WORKSPACE_MB * MiB,
      maxWorkspaceFiles: config.WORKER_SANDBOX_MAX_WORKSPACE_FILES,
      tmpBytes: config.WORKER_SANDBOX_TMP_MB * MiB,
    },
  };
}

/** Parses the reference worker's environment; a bad value stops the start with a message naming the variable. */
export function loadWorkerConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const parsed = workerEnvSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new Error(`Invalid worker configuration:\n${lines.join("\n")}`);
  }
  if (parsed.data.WORKER_AGENTS && parsed.data.WORKER_AGENTS_FILE) {
    throw new Error(
      "Invalid worker configuration:\n  WORKER_AGENTS: set WORKER_AGENTS or WORKER_AGENTS_FILE, not both",
    );
  }
  if (!parsed.data.WORKER_CAPABILITIES.length && !parsed.data.WORKER_AGENTS && !parsed.data.WORKER_AGENTS_FILE) {
    throw new Error("Invalid worker configuration:\n  WORKER_CAPABILITIES: list at least one capability");
  }
  return {
    ...parsed.data,
    WORKER_WORKSPACES_DIR: path.resolve(parsed.data.WORKER_WORKSPACES_DIR),
    WORKER_GIT_LOCAL_ROOTS: parsed.data.WORKER_GIT_LOCAL_ROOTS.map((r) => path.resolve(r)),
  };
}

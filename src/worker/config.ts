import os from "node:os";
import path from "node:path";
import { z } from "zod";

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
    .pipe(z.array(capabilityName).min(1, "list at least one capability")),
  WORKER_MAX_CONCURRENCY: z.coerce.number().int().min(1).max(1_000).default(4),
  WORKER_WORKSPACES_DIR: z.string().min(1).default(path.join(os.tmpdir(), "agent-agency-workspaces")),
  WORKER_NAME: z.string().min(1).max(100).default("reference"),
  /** Between SIGTERM and SIGKILL when a script's process group is stopped. */
  WORKER_KILL_GRACE_MS: z.coerce.number().int().min(0).max(60_000).default(2_000),
  WORKER_CHECK_TIMEOUT_SEC: z.coerce.number().int().min(1).max(86_400).default(60),
  WORKER_LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
});

export type WorkerConfig = z.output<typeof workerEnvSchema>;

/** Parses the reference worker's environment; a bad value stops the start with a message naming the variable. */
export function loadWorkerConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const parsed = workerEnvSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new Error(`Invalid worker configuration:\n${lines.join("\n")}`);
  }
  return { ...parsed.data, WORKER_WORKSPACES_DIR: path.resolve(parsed.data.WORKER_WORKSPACES_DIR) };
}

import path from "node:path";
import { z } from "zod";
import { ROLES } from "../shared/roles.js";

const envSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65_535).default(3000),
  HOST: z.string().default("0.0.0.0"),
  /** Where the embedded database (and later the key file) lives. */
  DATA_DIR: z.string().default("./data"),
  /** postgres://… switches from the embedded PGlite to a Postgres server. */
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, "DATABASE_URL must start with postgres:// or postgresql://")
    .optional()
    .or(z.literal("").transform(() => undefined)),
  /** Postgres schema to use on a server (tests isolate runs with one each). */
  DATABASE_SCHEMA: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,62}$/, "DATABASE_SCHEMA must be a lower-case SQL identifier")
    .default("public"),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  /** Requests with a larger body are refused before parsing. */
  MAX_BODY_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(1024 * 1024),
  /** Identity every request acts as until sign-in exists. */
  LOCAL_ACTOR_ID: z.string().min(1).max(128).default("local-operator"),
  LOCAL_ACTOR_ROLE: z.enum(ROLES).default("operator"),
  /** Built console to serve; `npm run dev` serves the sources through Vite instead. */
  WEB_DIST_DIR: z.string().default("dist/web"),
  DEV: z
    .enum(["0", "1", "true", "false"])
    .default("0")
    .transform((v) => v === "1" || v === "true"),
  WS_PING_MS: z.coerce.number().int().min(1000).default(30_000),
  WS_PONG_WAIT_MS: z.coerce.number().int().min(500).default(10_000),
});

export type Config = z.output<typeof envSchema> & { dataDir: string };

/** Parses the environment once; a bad value stops the start with a message naming the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new Error(`Invalid configuration:\n${lines.join("\n")}`);
  }
  return { ...parsed.data, dataDir: path.resolve(parsed.data.DATA_DIR) };
}

import { z } from "zod";

/** An unset variable and an empty one (as copied from .env.example) mean the same. */
const optional = <T extends z.ZodType>(schema: T) => schema.optional().or(z.literal("").transform(() => undefined));

/** Keystore, auth and provenance settings; spread into the server's environment schema. */
export const trustEnvShape = {
  /** Where the master key comes from: `file` (DATA_DIR/master.key, created on first start) or `env`. */
  KEYSTORE: z.string().min(1).max(32).default("file"),
  /** Base64 of 32 random bytes, for KEYSTORE=env. */
  AGENCY_MASTER_KEY: optional(z.string()),
  /** Comma-separated base64 master keys still accepted while `npm run keys:rotate` re-seals secrets. */
  AGENCY_MASTER_KEY_PREVIOUS: optional(z.string()),
  /** Key file for KEYSTORE=file; defaults to DATA_DIR/master.key. */
  KEYSTORE_FILE: optional(z.string()),
  /** Password for the first admin; without it a one-time password is generated and printed once. */
  AGENCY_ADMIN_PASSWORD: optional(z.string().min(12, "AGENCY_ADMIN_PASSWORD needs at least 12 characters").max(256)),
  /** An API token for the first admin (automation, tests); at least 32 characters. */
  AGENCY_BOOTSTRAP_TOKEN: optional(z.string().min(32, "AGENCY_BOOTSTRAP_TOKEN needs at least 32 characters").max(256)),
  SESSION_TTL_HOURS: z.coerce
    .number()
    .min(0.01)
    .max(24 * 90)
    .default(12),
  /**
   * Sign-in limiting, per account *and* client address (so a stranger's failures cannot lock the owner
   * out from their own address) and per address across accounts: after this many failures within
   * SIGNIN_WINDOW_MINUTES, each further attempt waits SIGNIN_DELAY_MS after the last failure, doubled
   * per further failure up to SIGNIN_MAX_DELAY_MS.
   */
  SIGNIN_FAILURES_BEFORE_DELAY: z.coerce.number().int().min(1).max(1000).default(5),
  SIGNIN_FAILURES_BEFORE_DELAY_PER_ADDRESS: z.coerce.number().int().min(1).max(10_000).default(20),
  SIGNIN_DELAY_MS: z.coerce.number().int().min(10).max(3_600_000).default(30_000),
  SIGNIN_MAX_DELAY_MS: z.coerce.number().int().min(10).max(86_400_000).default(900_000),
  SIGNIN_WINDOW_MINUTES: z.coerce
    .number()
    .min(1)
    .max(24 * 60)
    .default(60),
  /**
   * The checkpoint origin line and the signing key's name in checkpoint notes (no spaces, no '+');
   * default agent-agency/<host name>.
   */
  PROVENANCE_ORIGIN: optional(
    z
      .string()
      .max(200)
      .regex(/^[^\s+]+$/, "PROVENANCE_ORIGIN has no spaces and no '+' (a signed-note key name)"),
  ),
  /** The admin's file of pinned provenance public keys; defaults to DATA_DIR/provenance-trusted-keys. */
  PROVENANCE_TRUSTED_KEYS_FILE: optional(z.string().max(4096)),
  /** Every committed checkpoint is appended (and fsync'd) here; meant for another volume. Off when empty. */
  PROVENANCE_WITNESS_FILE: optional(z.string().max(4096)),
  /** Every committed checkpoint is POSTed here (best effort); the host must be in WORKER_ALLOWED_HOSTS. */
  PROVENANCE_WITNESS_URL: optional(z.url().max(2000)),
} as const;

export const trustEnvSchema = z.object(trustEnvShape);
export type TrustEnv = z.output<typeof trustEnvSchema>;
export type TrustConfig = TrustEnv & { dataDir: string };

/** Parses the trust settings from the environment (scripts use this; the server gets them through config.ts). */
export function loadTrustConfig(env: NodeJS.ProcessEnv, dataDir: string): TrustConfig {
  const parsed = trustEnvSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new Error(`Invalid configuration:\n${lines.join("\n")}`);
  }
  return { ...parsed.data, dataDir };
}

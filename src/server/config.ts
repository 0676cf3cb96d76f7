import path from "node:path";
import { z } from "zod";
import type { ApprovalTierPolicy } from "../shared/approvals.js";
import { ROLES } from "../shared/roles.js";
import { trustEnvShape } from "./keystore/config.js";
import { webhookEnvShape } from "./webhooks/config.js";

const flag = z.enum(["0", "1", "true", "false"]).transform((v) => v === "1" || v === "true");
const ms = (min: number) =>
  z.coerce
    .number()
    .int()
    .min(min)
    .max(24 * 3_600_000);

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
  /** pretty: lines for a person (and a start banner); json: one JSON object a line. Unset: pretty on a terminal. */
  LOG_FORMAT: z
    .enum(["pretty", "json"], { error: "LOG_FORMAT must be pretty or json" })
    .optional()
    .or(z.literal("").transform(() => undefined)),
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
  DEV: flag.default(false),
  /**
   * The console's address as browsers see it (scheme://host[:port]), when a proxy does not pass the
   * Host header through. Pages from it may use the session cookie (besides the Host's own origin).
   */
  PUBLIC_URL: z
    .url({ protocol: /^https?$/, error: "PUBLIC_URL must be an http:// or https:// URL" })
    .optional()
    .or(z.literal("").transform(() => undefined)),
  /** Further origins (comma list of scheme://host[:port]) whose pages may use the session cookie and WebSocket. */
  ALLOWED_ORIGINS: z
    .string()
    .default("")
    .transform((v) =>
      v
        .split(",")
        .map((o) => o.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.url({ protocol: /^https?$/, error: "ALLOWED_ORIGINS: each entry must be an http(s) origin" }))),
  /**
   * The server runs behind a reverse proxy whose X-Forwarded-Proto is to be believed: a request it says
   * came over HTTPS gets Strict-Transport-Security. Off: only a TLS connection to this process does.
   */
  TRUST_PROXY: flag.default(false),
  /** Strict-Transport-Security max-age on HTTPS answers, in seconds; 0 sends no HSTS header. */
  HSTS_MAX_AGE_SECONDS: z.coerce.number().int().min(0).max(63_072_000).default(31_536_000),
  /** Bearer token a Prometheus scraper may use for GET /metrics (any user's API token works too); at least 32 characters. */
  METRICS_TOKEN: z
    .string()
    .min(32, "METRICS_TOKEN needs at least 32 characters")
    .max(256)
    .optional()
    .or(z.literal("").transform(() => undefined)),
  WS_PING_MS: z.coerce.number().int().min(1000).default(30_000),
  WS_PONG_WAIT_MS: z.coerce.number().int().min(500).default(10_000),
  /** A WebSocket connection with more unsent bytes than this (a client not reading) is dropped; it resumes by lastEventId. */
  WS_MAX_BUFFERED_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(4 * 1024 * 1024),

  /** Hosts a worker URL may point at (comma list). Registration and every outbound call check it. */
  WORKER_ALLOWED_HOSTS: z
    .string()
    .default("localhost,127.0.0.1,::1")
    .transform((v) =>
      v
        .split(",")
        .map((h) =>
          h
            .trim()
            .toLowerCase()
            .replace(/^\[|\]$/g, ""),
        )
        .filter(Boolean),
    ),
  /** Workers to register (upsert) at start: JSON array, or `name=url|cap1,cap2|concurrency` entries separated by `;`. */
  WORKERS: z.string().default(""),
  /**
   * A worker's JSON answer, and each line of an NDJSON answer, is read no further than this: over it
   * the request is aborted and the attempt fails (the worker's fault, not retried).
   */
  WORKER_MAX_RESPONSE_BYTES: z.coerce
    .number()
    .int()
    .min(64 * 1024)
    .max(1024 ** 3)
    .default(8 * 1024 * 1024),
  /** Content plus diffs (UTF-8 bytes) of all the artifacts of one result; over it the attempt fails. */
  WORKER_MAX_ARTIFACT_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(1024 ** 3)
    .default(8 * 1024 * 1024),
  /** Artifacts in one result; over it the attempt fails. */
  WORKER_MAX_ARTIFACTS: z.coerce.number().int().min(1).max(10_000).default(1_000),
  /**
   * `npm start` runs one reference worker as a child process: by default with the embedded database
   * only. It registers as "reference" at a loopback URL, which means something to this process alone,
   * so on a shared Postgres server it is off unless asked for (one process of a cluster at most).
   */
  START_REFERENCE_WORKER: flag.optional().or(z.literal("").transform(() => undefined)),
  /** Run the dispatcher, lease recovery and health polling in this process (0: API only). */
  EXECUTION_ENABLED: flag.default(true),
  WORKER_HEALTH_INTERVAL_MS: ms(200).default(10_000),
  WORKER_HEALTH_TIMEOUT_MS: ms(50).default(3_000),
  /** How often an A2A agent that does not stream is asked (`tasks/get`) how its task is going. */
  A2A_POLL_INTERVAL_MS: ms(20).default(500),
  /** The dispatcher also looks for work on this period (it is woken at once on create and retry). */
  DISPATCH_INTERVAL_MS: ms(10).default(500),
  /** How long a running attempt's lease lasts without renewal; renewed every third of it. */
  LEASE_MS: ms(300).default(30_000),
  /** How often expired leases (attempts of a process that died) are looked for. */
  RECOVERY_INTERVAL_MS: ms(100).default(10_000),
  /**
   * On SIGTERM/SIGINT: how long running attempts get to finish before they are handed back (lease
   * released, work left running at the worker for the next process to re-attach to by its Idempotency-Key).
   */
  SHUTDOWN_GRACE_MS: ms(0).default(10_000),
  /**
   * Times one attempt may be re-attached after the process running it stopped (its lease expired)
   * before it is marked lost. Bounds a crash loop; a graceful hand-back (SIGTERM) does not count.
   */
  RECOVERY_LIMIT: z.coerce.number().int().min(0).max(100).default(3),
  /** Automatic re-dispatches of a `changes_requested` task, with the council's critique, before an operator decides. */
  MAX_AUTO_REDISPATCH: z.coerce.number().int().min(0).max(20).default(2),
  /** Threads that judge attempts off the event loop (each started on first need and reused). */
  COUNCIL_THREADS: z.coerce.number().int().min(1).max(8).default(2),
  /** Longest the council may take on one attempt; past it the thread is stopped and the verdict says so. */
  COUNCIL_TIMEOUT_MS: ms(100).default(60_000),
  /** How long the worker gets to confirm a `/cancel`. */
  CANCEL_TIMEOUT_MS: ms(50).default(5_000),
  /** Breaker opens after this many failed calls to one worker within BREAKER_WINDOW_MS. */
  BREAKER_FAILURES: z.coerce.number().int().min(1).max(1000).default(5),
  BREAKER_WINDOW_MS: ms(100).default(60_000),
  /** Cool-down before an open breaker half-opens and probes the worker. */
  BREAKER_HALF_OPEN_AFTER_MS: ms(50).default(30_000),
  /** Consecutive successful health probes that close a half-open breaker. */
  BREAKER_CLOSE_AFTER_SUCCESSES: z.coerce.number().int().min(1).max(100).default(2),
  /**
   * Backoff between tries of one attempt (p-retry's own): retry n waits min(max, base·2^(n-1)) times
   * a random factor in [1, 2), never more than RETRY_MAX_DELAY_MS; the next try never comes sooner
   * than a worker's `Retry-After` asks. No try starts after the task's deadline.
   */
  RETRY_BASE_DELAY_MS: ms(0).default(500),
  /** The longest backoff between two tries of one attempt (a `Retry-After` may ask for longer). */
  RETRY_MAX_DELAY_MS: ms(0).default(30_000),
  /** JSON object overriding parts of the retry policy table by risk tier, e.g. {"3":{"tries":1}}. */
  RETRY_POLICY: z.string().default(""),
  /**
   * JSON object by risk tier: whether an accepting verdict waits for a person's approval, who may give it
   * ("operator": an operator or admin; "admin": an admin only) and four eyes (the task's creator may not).
   */
  APPROVAL_POLICY: z.string().default(""),
  /** Keystore, sign-in and provenance: see src/server/keystore/config.ts. */
  ...trustEnvShape,
  /** Webhook delivery: see src/server/webhooks/config.ts. */
  ...webhookEnvShape,
  /** Live metrics: a snapshot every METRICS_INTERVAL_MS; ratios and percentiles over METRICS_WINDOW_MS (whole 5 s slots). */
  METRICS_INTERVAL_MS: ms(50).default(1_000),
  METRICS_WINDOW_MS: ms(60_000)
    .refine((v) => v % 5_000 === 0, "METRICS_WINDOW_MS must be a multiple of 5000")
    .default(300_000),
  /** One-minute metric rollups older than this are deleted. */
  METRICS_RETENTION_DAYS: z.coerce.number().int().min(1).max(365).default(7),
  /** Chat: messages one user may send per minute, across sessions. */
  CHAT_MESSAGES_PER_MINUTE: z.coerce.number().int().min(1).max(10_000).default(30),
  /** Chat: how long the chat worker has to answer free text. */
  CHAT_WORKER_TIMEOUT_MS: ms(100).default(120_000),
});

export interface TierPolicy {
  /** Attempts (dispatches) a task gets before it fails for good. */
  attempts: number;
  /** HTTP tries per attempt (1 + retries). */
  tries: number;
  /** A try fails when the worker says nothing (no headers, no stream line) for this long. */
  tryTimeoutMs: number;
  /** The whole attempt's deadline when the spec has no `budget.maxDurationSec`. */
  deadlineMs: number;
}

/** The retry policy by risk tier, in one table: tier 1 gets the most tries and the longest timeouts. */
export const DEFAULT_RETRY_POLICY: Record<1 | 2 | 3, TierPolicy> = {
  1: { attempts: 3, tries: 5, tryTimeoutMs: 120_000, deadlineMs: 60 * 60_000 },
  2: { attempts: 2, tries: 3, tryTimeoutMs: 60_000, deadlineMs: 30 * 60_000 },
  3: { attempts: 1, tries: 2, tryTimeoutMs: 30_000, deadlineMs: 15 * 60_000 },
};

const tierOverrideSchema = z
  .object({
    attempts: z.number().int().min(1).max(20),
    tries: z.number().int().min(1).max(20),
    tryTimeoutMs: z.number().int().min(10),
    deadlineMs: z.number().int().min(10),
  })
  .partial()
  .strict();
const policyOverrideSchema = z
  .object({ 1: tierOverrideSchema, 2: tierOverrideSchema, 3: tierOverrideSchema })
  .partial()
  .strict();

function parseRetryPolicy(raw: string): Record<1 | 2 | 3, TierPolicy> {
  if (!raw.trim()) return DEFAULT_RETRY_POLICY;
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    throw new Error('Invalid configuration:\n  RETRY_POLICY: must be a JSON object such as {"1":{"tries":5}}');
  }
  const parsed = policyOverrideSchema.safeParse(json);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  RETRY_POLICY.${i.path.join(".")}: ${i.message}`);
    throw new Error(`Invalid configuration:\n${lines.join("\n")}`);
  }
  const o = parsed.data;
  return {
    1: { ...DEFAULT_RETRY_POLICY[1], ...o[1] },
    2: { ...DEFAULT_RETRY_POLICY[2], ...o[2] },
    3: { ...DEFAULT_RETRY_POLICY[3], ...o[3] },
  };
}

/** Whether an accepted attempt of a tier waits for a person's approval, and whose. */
export type ApprovalPolicy = ApprovalTierPolicy;

/** Tier 1 waits for an operator other than the task's creator; tiers 2 and 3 are accepted by the council alone. */
export const DEFAULT_APPROVAL_POLICY: Record<1 | 2 | 3, ApprovalPolicy> = {
  1: { required: true, approver: "operator", fourEyes: true },
  2: { required: false, approver: "operator", fourEyes: false },
  3: { required: false, approver: "operator", fourEyes: false },
};

const approvalTierSchema = z
  .object({
    required: z.boolean({ error: "must be true or false" }),
    approver: z.enum(["operator", "admin"], { error: 'must be "operator" or "admin"' }),
    fourEyes: z.boolean({ error: "must be true or false" }),
  })
  .partial()
  .strict();
const approvalPolicySchema = z
  .object({ 1: approvalTierSchema, 2: approvalTierSchema, 3: approvalTierSchema })
  .partial()
  .strict();

/** A tier given in APPROVAL_POLICY replaces the parts it names; a tier left out keeps its default. */
function parseApprovalPolicy(raw: string): Record<1 | 2 | 3, ApprovalPolicy> {
  if (!raw.trim()) return DEFAULT_APPROVAL_POLICY;
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    throw new Error(
      'Invalid configuration:\n  APPROVAL_POLICY: must be a JSON object such as {"1":{"required":true,"approver":"admin","fourEyes":true}}',
    );
  }
  const parsed = approvalPolicySchema.safeParse(json);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  APPROVAL_POLICY.${i.path.join(".")}: ${i.message}`);
    throw new Error(`Invalid configuration:\n${lines.join("\n")}`);
  }
  const o = parsed.data;
  return {
    1: { ...DEFAULT_APPROVAL_POLICY[1], ...o[1] },
    2: { ...DEFAULT_APPROVAL_POLICY[2], ...o[2] },
    3: { ...DEFAULT_APPROVAL_POLICY[3], ...o[3] },
  };
}

export type Config = z.output<typeof envSchema> & {
  dataDir: string;
  /** START_REFERENCE_WORKER, or its default: on with the embedded database, off with DATABASE_URL. */
  startReferenceWorker: boolean;
  retryPolicy: Record<1 | 2 | 3, TierPolicy>;
  approvalPolicy: Record<1 | 2 | 3, ApprovalPolicy>;
};

/** Parses the environment once; a bad value stops the start with a message naming the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new Error(`Invalid configuration:\n${lines.join("\n")}`);
  }
  return {
    ...parsed.data,
    dataDir: path.resolve(parsed.data.DATA_DIR),
    startReferenceWorker: parsed.data.START_REFERENCE_WORKER ?? !parsed.data.DATABASE_URL,
    retryPolicy: parseRetryPolicy(parsed.data.RETRY_POLICY),
    approvalPolicy: parseApprovalPolicy(parsed.data.APPROVAL_POLICY),
  };
}

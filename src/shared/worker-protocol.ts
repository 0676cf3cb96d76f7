import { z } from "zod";
import { taskSpecSchema } from "./task-spec.js";
import { text } from "./text.js";

/**
 * Worker protocol v1: JSON over HTTP between the agency and a worker agent.
 *
 *   POST {worker}/execute   ExecuteRequest → ExecuteResult (JSON), or an NDJSON stream of
 *                           log / progress / heartbeat lines ending with one result line
 *   POST {worker}/cancel    CancelRequest → CancelResponse
 *   GET  {worker}/health    → WorkerHealth
 *
 * Requests carry `Authorization: Bearer <worker token>` and, on execute,
 * `Idempotency-Key: <taskId>:<attempt>`: a worker that sees a key again must not run the work twice.
 */
export const PROTOCOL_VERSION = 1;
export const NDJSON_CONTENT_TYPE = "application/x-ndjson";

export const IDEMPOTENCY_HEADER = "idempotency-key";
export const idempotencyKey = (taskId: string, attempt: number) => `${taskId}:${attempt}`;

const MAX_TEXT = 100_000;
const MAX_ARTIFACT_BYTES = 2 * 1024 * 1024;
/** Bounds of a result's `usage`: per attempt. */
export const MAX_USAGE_TOKENS = 2_000_000_000;
export const MAX_USAGE_COST_USD = 1_000_000;
export const MAX_USAGE_MODEL = 100;

export const findingSchema = z.object({
  judge: z.string().max(64),
  severity: z.enum(["info", "warning", "error"]),
  message: z.string().max(4_000),
  path: z.string().max(1_000).optional(),
  line: z.number().int().min(1).optional(),
  pattern: z.string().max(200).optional(),
  snippet: z.string().max(1_000).optional(),
});
export type Finding = z.infer<typeof findingSchema>;

/** What the previous attempt's verdict asked to change, handed to the next attempt. */
export const critiqueSchema = z.object({
  fromAttempt: z.number().int().min(1),
  verdict: z.enum(["changes_requested", "reject"]),
  rationale: z.string().max(10_000),
  findings: z.array(findingSchema).max(500),
});
export type Critique = z.infer<typeof critiqueSchema>;

export const executeRequestSchema = z.object({
  protocol: z.literal(PROTOCOL_VERSION),
  taskId: z.uuid(),
  attempt: z.number().int().min(1),
  spec: taskSpecSchema,
  critique: critiqueSchema.optional(),
  /** ISO 8601: the worker should give up (and answer `failed`) by then. */
  deadline: z.iso.datetime(),
});
export type ExecuteRequest = z.infer<typeof executeRequestSchema>;

// What a worker sends is stored, judged and signed as sent: text with a NUL character or a lone
// surrogate cannot be (text.ts), so a result holding one does not match the protocol.
export const artifactSchema = z.object({
  path: text().min(1).max(1_000),
  operation: z.enum(["create", "modify", "delete"]),
  content: text().max(MAX_ARTIFACT_BYTES).optional(),
  /** Unified diff against the file as it was before the attempt. */
  diff: text().max(MAX_ARTIFACT_BYTES).optional(),
});
export type Artifact = z.infer<typeof artifactSchema>;

/** The result of one acceptance criterion's command check, run by the worker in its workspace. */
export const checkResultSchema = z.object({
  criterion: z.number().int().min(0),
  passed: z.boolean(),
  exitCode: z.number().int().nullable().optional(),
  output: text().max(20_000).optional(),
});
export type CheckResult = z.infer<typeof checkResultSchema>;

export const executeResultSchema = z.object({
  status: z.enum(["completed", "failed"]),
  summary: text().max(MAX_TEXT),
  artifacts: z.array(artifactSchema).max(10_000),
  logs: z.array(text().max(MAX_TEXT)).max(10_000).optional(),
  checks: z.array(checkResultSchema).max(100).optional(),
  usage: z
    .object({
      durationMs: z.number().min(0).optional(),
      // Bounded so one attempt's figures fit the attempts table's columns (tokens: integer; cost: numeric(14,6)).
      inputTokens: z.number().int().min(0).max(MAX_USAGE_TOKENS).optional(),
      outputTokens: z.number().int().min(0).max(MAX_USAGE_TOKENS).optional(),
      /** What the attempt cost at the model provider's prices, in US dollars (stored to the millionth). */
      costUsd: z.number().min(0).max(MAX_USAGE_COST_USD).optional(),
      /** The model that did the work, as the worker names it (e.g. "claude-sonnet-4-5"). */
      model: text().min(1).max(MAX_USAGE_MODEL).optional(),
    })
    .optional(),
  error: z.object({ code: text().max(100).optional(), message: text().max(10_000) }).optional(),
});
export type ExecuteResult = z.infer<typeof executeResultSchema>;

/** One line of an NDJSON answer to /execute. */
export const streamLineSchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("log"),
    stream: z.enum(["stdout", "stderr", "info"]).default("info"),
    line: z.string().max(MAX_TEXT),
  }),
  z.object({
    type: z.literal("progress"),
    percent: z.number().min(0).max(100).optional(),
    message: z.string().max(2_000).optional(),
  }),
  /**
   * "Still working": a worker sends one while its work is quiet (at most every HEARTBEAT_EVERY_MS), so a
   * silent script is told from a dead worker. The agency's try timeout is an idle timeout on the stream:
   * any line, a heartbeat included, restarts it. Heartbeats are not stored as task events.
   */
  z.object({ type: z.literal("heartbeat") }),
  z.object({ type: z.literal("result"), result: executeResultSchema }),
]);

/** How often a worker sends a heartbeat line while its work says nothing (the reference worker's default). */
export const HEARTBEAT_EVERY_MS = 10_000;
export type StreamLine = z.infer<typeof streamLineSchema>;

export const cancelRequestSchema = z.object({
  taskId: z.uuid(),
  attempt: z.number().int().min(1),
  reason: z.string().max(2_000),
});
export type CancelRequest = z.infer<typeof cancelRequestSchema>;

export const cancelResponseSchema = z.object({
  /** `canceled`: the work was running and is stopped; `not_running`: nothing to stop. */
  status: z.enum(["canceled", "not_running"]),
});
export type CancelResponse = z.infer<typeof cancelResponseSchema>;

export const SANDBOX_STATES = ["bubblewrap", "off", "unavailable"] as const;
export type SandboxState = (typeof SANDBOX_STATES)[number];

export const workerHealthSchema = z.object({
  status: z.enum(["ok", "degraded"]),
  protocol: z.literal(PROTOCOL_VERSION),
  capabilities: z.array(text().max(64)).max(100),
  inFlight: z.number().int().min(0),
  maxConcurrency: z.number().int().min(1).optional(),
  version: text().max(100).optional(),
  /**
   * How the worker confines the scripts it runs: "bubblewrap" (each in its own sandbox), "off" (unconfined, with the
   * worker's own privileges: shown as "unsandboxed"), "unavailable" (configured to sandbox but the sandbox cannot
   * start: it refuses scripts). Absent: the worker does not say.
   */
  sandbox: z.enum(SANDBOX_STATES).optional(),
});
export type WorkerHealth = z.infer<typeof workerHealthSchema>;

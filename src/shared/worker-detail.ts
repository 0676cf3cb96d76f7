import { z } from "zod";
import { safeText } from "./text.js";

/**
 * A worker's dispatch state, set by an admin and kept across restarts:
 * - `active`: takes work;
 * - `paused`: takes no new attempt until resumed;
 * - `draining`: takes no new attempt, and becomes `drained` once its running attempts have ended;
 * - `drained`: a drain that completed; takes no new attempt until resumed.
 * Attempts already running finish normally in every state.
 */
export const DISPATCH_STATES = ["active", "paused", "draining", "drained"] as const;
export type DispatchState = (typeof DISPATCH_STATES)[number];

/** What a worker's history records: breaker and health changes, admins' actions, a drain's end. */
export const WORKER_EVENT_KINDS = [
  "breaker",
  "health",
  "pause",
  "drain",
  "drained",
  "resume",
  "trip",
  "reset",
] as const;
export type WorkerEventKind = (typeof WORKER_EVENT_KINDS)[number];

/** Rows of history kept per worker: older ones are pruned as new ones are written. */
export const WORKER_HISTORY_KEEP = 500;

export const workerIdSchema = z.uuid({ error: "Worker id must be a UUID" });

const REASON_MAX = 500;
/** An admin's reason for a pause, drain, resume or reset: optional. */
export const workerReasonSchema = safeText(
  z.string().trim().max(REASON_MAX, `Reason must be at most ${REASON_MAX} characters`),
).optional();
/** Tripping a breaker by hand needs a reason: it is audited with it. */
export const tripReasonSchema = safeText(
  z
    .string()
    .trim()
    .min(1, "Give a reason for tripping the breaker")
    .max(REASON_MAX, `Reason must be at most ${REASON_MAX} characters`),
);

export const workerActionInputSchema = z.object({ id: workerIdSchema, reason: workerReasonSchema });
export const workerTripInputSchema = z.object({ id: workerIdSchema, reason: tripReasonSchema });

/** Keyset pages, newest first: `cursor` is the previous page's `nextCursor`. */
export const workerPageInputSchema = z.object({
  id: workerIdSchema,
  limit: z.number().int().min(1).max(100).default(25),
  cursor: z
    .string()
    .max(100)
    .regex(/^[0-9A-Za-z:._-]+$/, "Cursor is not one this server gave")
    .nullish(),
});

/** The time ranges the worker page's activity can cover, each with its bucket width. */
export const ACTIVITY_RANGES = {
  "1h": { rangeMs: 60 * 60_000, bucketMs: 60_000 },
  "24h": { rangeMs: 24 * 60 * 60_000, bucketMs: 60 * 60_000 },
  "7d": { rangeMs: 7 * 24 * 60 * 60_000, bucketMs: 6 * 60 * 60_000 },
} as const;
export type ActivityRange = keyof typeof ACTIVITY_RANGES;
export const ACTIVITY_RANGE_KEYS = Object.keys(ACTIVITY_RANGES) as ActivityRange[];

export const workerActivityInputSchema = z.object({
  id: workerIdSchema,
  range: z.enum(ACTIVITY_RANGE_KEYS as [ActivityRange, ...ActivityRange[]]).default("24h"),
});

/** One bucket of a worker's ended attempts (by start time). */
export interface ActivityBucket {
  /** Start of the bucket, epoch ms. */
  start: number;
  attempts: number;
  failed: number;
  /** failed / attempts; null without attempts. */
  failedShare: number | null;
  /** Run time of the attempts that ended, in ms; null without any. */
  p50Ms: number | null;
  p95Ms: number | null;
}

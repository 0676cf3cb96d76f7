/**
 * Which workers a dispatch pass claims tasks for, in which order and how many each: pure, so it is
 * tested on its own. Rules:
 * - never a worker whose health is `down`, whose breaker is not closed, that an admin tripped, or that an
 *   admin paused or drained (its dispatch state is not `active`);
 * - a worker with no recent failures may fill all its free slots;
 * - a worker with recent failures (its error rate over the breaker window) may have only its
 *   healthy share of slots in flight, `maxConcurrency × (1 − errorRate)`, at least one: a worker
 *   that fails fast frees its slots fast, and would otherwise attract most of the work;
 *   a `degraded` worker (its own /health says so) gets half its share;
 * - workers are served best first: lowest error rate, then health ok before degraded, then least
 *   loaded (in flight / maxConcurrency), then most free slots, then name.
 */

export type DispatchHealth = "unknown" | "ok" | "degraded" | "down";
export type DispatchBreaker = "closed" | "open" | "half_open" | "tripped";
/** An admin's pause or drain (src/shared/worker-detail.ts). */
export type DispatchState = "active" | "paused" | "draining" | "drained";

export interface DispatchCandidate {
  id: string;
  name: string;
  maxConcurrency: number;
  /** Attempts running on it now. */
  busy: number;
  /** Tripped by an admin (persisted). */
  tripped: boolean;
  health: DispatchHealth;
  breaker: DispatchBreaker;
  /** Failed share of its recent calls (0 to 1), over the breaker window. */
  errorRate: number;
  /** Absent: active. */
  dispatchState?: DispatchState;
}

export interface DispatchSlot<C extends DispatchCandidate = DispatchCandidate> {
  worker: C;
  /** Tasks to claim for it in this pass (at least 1). */
  claim: number;
}

/** Why a worker gets no work at all, or null when it may get some. */
export function unusableReason(c: DispatchCandidate): string | null {
  if (c.tripped || c.breaker === "tripped") return "circuit breaker tripped by an admin";
  if (c.dispatchState === "paused") return "paused by an admin";
  if (c.dispatchState === "draining") return "draining (an admin asked it to take no more)";
  if (c.dispatchState === "drained") return "drained by an admin";
  if (c.breaker !== "closed") return `circuit breaker ${c.breaker.replace("_", "-")}`;
  if (c.health === "down") return "health check down";
  return null;
}

/** How many attempts the worker may have in flight given its recent errors and health. */
export function allowedInFlight(c: DispatchCandidate): number {
  const rate = Math.min(1, Math.max(0, c.errorRate));
  let share = c.maxConcurrency * (1 - rate);
  if (c.health === "degraded") share /= 2;
  if (rate === 0 && c.health !== "degraded") return c.maxConcurrency;
  return Math.max(1, Math.floor(share));
}

/** Tasks the worker may take now: 0 when unusable or full. */
export function claimable(c: DispatchCandidate): number {
  if (unusableReason(c) !== null) return 0;
  return Math.max(0, Math.min(c.maxConcurrency - c.busy, allowedInFlight(c) - c.busy));
}

/** The workers to claim for, best first, each with how many tasks to claim. */
export function dispatchOrder<C extends DispatchCandidate>(candidates: readonly C[]): DispatchSlot<C>[] {
  const rank = (h: DispatchHealth) => (h === "degraded" ? 1 : 0);
  return candidates
    .map((worker) => ({ worker, claim: claimable(worker) }))
    .filter((s) => s.claim > 0)
    .sort(
      (a, b) =>
        a.worker.errorRate - b.worker.errorRate ||
        rank(a.worker.health) - rank(b.worker.health) ||
        a.worker.busy / a.worker.maxConcurrency - b.worker.busy / b.worker.maxConcurrency ||
        b.claim - a.claim ||
        a.worker.name.localeCompare(b.worker.name),
    );
}

/**
 * Whether the transaction that ends a worker's attempts may claim again at once for the slots they
 * freed. Only for a worker with no recent failures: a failing worker's slots are offered by the
 * next dispatch pass, which weighs it against the others.
 */
export function mayRefill(c: Pick<DispatchCandidate, "tripped" | "breaker" | "health" | "errorRate">): boolean {
  return !c.tripped && c.breaker === "closed" && c.health !== "down" && c.health !== "degraded" && c.errorRate === 0;
}

/**
 * Why a task with this capability waits, or null when some worker may take it. `capable`: the
 * enabled workers with the capability.
 */
export function waitingReason(capability: string, capable: readonly DispatchCandidate[]): string | null {
  if (capable.length === 0) {
    return `No enabled worker has the capability "${capability}"; register one (workers.register) or enable one.`;
  }
  const reasons = capable.map((w) => [w, unusableReason(w)] as const);
  if (reasons.some(([, r]) => r === null)) return null;
  const list = reasons.map(([w, r]) => `${w.name}: ${r}`).join(", ");
  return `Every worker with "${capability}" is unavailable (${list}); waiting for one to recover.`;
}

/**
 * The task state machine, defined once for server, worker and console.
 *
 * There is no `judging` state: the council judges a worker's result before it is stored, so a task
 * goes from `running` to its verdict in one commit (the result, the verdict and their records
 * together). Events written by versions before 0.2 show a `judging` step between the two; the
 * database's enum keeps the value for them.
 */
export const TASK_STATES = [
  "queued",
  "running",
  "awaiting_approval",
  "accepted",
  "changes_requested",
  "rejected",
  "failed",
  "canceling",
  "canceled",
] as const;
export type TaskState = (typeof TASK_STATES)[number];

/** Who may cause a transition: the agency itself, or a person with at least this role. */
export type TransitionActor = "system" | "operator" | "admin";

export type TransitionName =
  | "dispatch"
  | "requeue"
  | "fail"
  | "verdict"
  | "cancel"
  | "cancel_done"
  | "retry"
  | "override"
  | "approve"
  | "reject";

export interface Transition {
  from: TaskState;
  to: TaskState;
  name: TransitionName;
  by: readonly TransitionActor[];
}

const VERDICT_STATES = ["accepted", "changes_requested", "rejected"] as const;
const RETRYABLE_STATES = ["changes_requested", "rejected", "failed", "canceled"] as const;

export const TRANSITIONS: readonly Transition[] = [
  { from: "queued", to: "running", name: "dispatch", by: ["system"] },
  // A worker failure that still has retries left, or a lease that expired with its process.
  { from: "running", to: "queued", name: "requeue", by: ["system"] },
  { from: "running", to: "failed", name: "fail", by: ["system"] },
  // The council's verdict on a completed attempt (judged before it is stored).
  ...VERDICT_STATES.map((to) => ({ from: "running" as const, to, name: "verdict" as const, by: ["system"] as const })),
  // An accepting verdict on a task whose risk tier's policy (APPROVAL_POLICY) wants a person's approval first.
  { from: "running", to: "awaiting_approval", name: "verdict", by: ["system"] },
  // That person's decision (who may decide is the tier's policy: an operator, or only an admin; four eyes).
  { from: "awaiting_approval", to: "accepted", name: "approve", by: ["operator", "admin"] },
  { from: "awaiting_approval", to: "rejected", name: "reject", by: ["operator", "admin"] },
  // A task waiting for approval may be canceled like a queued one: nothing runs, so it is canceled at once.
  ...(["queued", "running", "awaiting_approval"] as const).map((from) => ({
    from,
    to: "canceling" as const,
    name: "cancel" as const,
    by: ["operator", "admin"] as const,
  })),
  { from: "canceling", to: "canceled", name: "cancel_done", by: ["system"] },
  ...RETRYABLE_STATES.map((from) => ({
    from,
    to: "queued" as const,
    name: "retry" as const,
    // The council's request-changes loop also re-dispatches on its own, up to a limit.
    by: from === "changes_requested" ? (["system", "operator", "admin"] as const) : (["operator", "admin"] as const),
  })),
  // An admin may replace a verdict with another, with a written justification.
  ...VERDICT_STATES.flatMap((from) =>
    VERDICT_STATES.filter((to) => to !== from).map((to) => ({
      from,
      to,
      name: "override" as const,
      by: ["admin"] as const,
    })),
  ),
];

export const TERMINAL_STATES: readonly TaskState[] = ["accepted", "rejected", "failed", "canceled"];
export const ACTIVE_STATES: readonly TaskState[] = ["queued", "running", "canceling"];
/**
 * Not finished, yet holding no worker slot and not dispatched: the attempt is done and judged, and the
 * task waits for a person's approval. Neither terminal nor active; it cannot be rerun or retried until decided.
 */
export const AWAITING_STATES: readonly TaskState[] = ["awaiting_approval"];
/** Every state that is not final: the active ones and those waiting for a person. */
export const UNFINISHED_STATES: readonly TaskState[] = [...ACTIVE_STATES, ...AWAITING_STATES];

export function findTransition(from: TaskState, to: TaskState): Transition | undefined {
  return TRANSITIONS.find((t) => t.from === from && t.to === to);
}

export class IllegalTransitionError extends Error {
  constructor(
    readonly from: TaskState,
    readonly to: TaskState,
    reason: string,
  ) {
    super(reason);
    this.name = "IllegalTransitionError";
  }
}

/** Returns the transition, or throws an error that names both states and who may make it. */
export function assertTransition(from: TaskState, to: TaskState, actor: TransitionActor): Transition {
  const t = findTransition(from, to);
  if (!t) {
    const legal = TRANSITIONS.filter((x) => x.from === from).map((x) => x.to);
    const options = legal.length ? `legal next states: ${[...new Set(legal)].join(", ")}` : "it is final";
    throw new IllegalTransitionError(from, to, `A task cannot go from ${from} to ${to} (${options}).`);
  }
  if (!t.by.includes(actor)) {
    throw new IllegalTransitionError(
      from,
      to,
      `A task goes from ${from} to ${to} only by ${t.by.join(" or ")}, not by ${actor}.`,
    );
  }
  return t;
}

export const STATE_LABELS: Record<TaskState, string> = {
  queued: "Queued",
  running: "Running",
  awaiting_approval: "Awaiting approval",
  accepted: "Accepted",
  changes_requested: "Changes requested",
  rejected: "Rejected",
  failed: "Failed",
  canceling: "Canceling",
  canceled: "Canceled",
};

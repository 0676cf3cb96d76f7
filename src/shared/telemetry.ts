/**
 * The OpenTelemetry vocabulary of a task's path (issue #15): span names and attribute keys, one set for
 * the agency and its workers. A task's trace:
 *
 *   agency.task.create                       (child of the caller's span when tasks.create had a `traceparent`)
 *   └─ agency.task.claim                     one per attempt: the dispatcher claimed the task for a worker
 *      └─ agency.attempt                     the attempt's run in one agency process
 *         ├─ agency.worker.try               each try (HTTP call) of that attempt; `traceparent` sent with it
 *         │  └─ agency.worker.run            the worker's own span (the worker SDK), from that `traceparent`
 *         ├─ agency.council                  the council judging the result
 *         └─ agency.attempt.end              storing the attempt's end: the task's state after it
 *
 * An attempt re-attached by another process after a restart has no claim span there: its `agency.attempt`
 * span (attribute `agency.attempt.reattached`) is a child of `agency.task.create`, whose context the task
 * row keeps (`tasks.trace_parent`), so every span of the task stays in one trace.
 */
export const SPAN = {
  create: "agency.task.create",
  claim: "agency.task.claim",
  attempt: "agency.attempt",
  try: "agency.worker.try",
  council: "agency.council",
  end: "agency.attempt.end",
  cancel: "agency.task.cancel",
  workerRun: "agency.worker.run",
} as const;

export const ATTR = {
  taskId: "agency.task.id",
  /** The task's state once a span's step is done (`queued` after a create, `accepted` … after an end). */
  taskState: "agency.task.state",
  capability: "agency.task.capability",
  riskTier: "agency.task.risk_tier",
  attempt: "agency.attempt.number",
  /** Tries the attempt made (on its end). */
  tries: "agency.attempt.tries",
  reattached: "agency.attempt.reattached",
  worker: "agency.worker.name",
  try: "agency.try.number",
  /** completed · failed · canceled · handed_back · taken_over (an attempt); completed · failed (a try, a run). */
  outcome: "agency.outcome",
  /** The council's verdict: accept · changes_requested · reject. */
  verdict: "agency.verdict",
  /** A failed try's error kind (timeout, http, network, protocol, breaker_open …). */
  errorKind: "agency.error.kind",
} as const;

/** The W3C Trace Context header names (https://www.w3.org/TR/trace-context/). */
export const TRACEPARENT_HEADER = "traceparent";
export const TRACESTATE_HEADER = "tracestate";

import type { TaskState } from "./task-state.js";

/**
 * Every kind of entry in a task's append-only event log: the vocabulary writers are held to (the server's
 * `NewTaskEvent.type`) and that `tasks.onEvent` and `tasks.events` take as a `kinds` filter.
 */
export const TASK_EVENT_TYPES = [
  /** The task was submitted (toState: queued). */
  "created",
  /** Any move along the state machine; `data.name` is the transition (dispatch, requeue, verdict, …). */
  "state_changed",
  /** A line of the worker's output (`data.stream`, `data.line`). */
  "log",
  /** The worker's progress report (`data.percent`, `data.message`). */
  "progress",
  /** One try of an attempt failed and is retried or given up (`data.try`, `data.of`, `data.error`). */
  "attempt_try_failed",
  /** An attempt's lease expired with its process (recovery). */
  "attempt_lost",
  /**
   * A process took over a running attempt whose process stopped (or handed it back) and sent it again to
   * the same worker with the same Idempotency-Key (`data.attempt`, `data.from`, `data.recovery`, `data.of`).
   */
  "attempt_reattached",
  /** At shutdown, a running attempt's lease was released with the work left running at its worker. */
  "attempt_handed_back",
  /** The circuit breaker of the worker running the task changed (`data.from`, `data.to`). */
  "worker_breaker",
  /**
   * An A2A agent stopped to ask (its task is `input-required` or `auth-required`): the attempt waits, without
   * its idle timeout, for an operator's answer (`data.attempt`, `data.kind`, `data.question`).
   */
  "input_required",
  /** An operator answered the agent's question; the answer goes to the agent as a follow-up message (`data.text`). */
  "input_answered",
] as const;
export type TaskEventType = (typeof TASK_EVENT_TYPES)[number];

export const isTaskEventType = (t: string): t is TaskEventType => (TASK_EVENT_TYPES as readonly string[]).includes(t);

/** The kinds that change a task's row (its state, attempt, reason): what a task list needs to stay current. */
export const STATE_EVENT_TYPES = ["created", "state_changed"] as const satisfies readonly TaskEventType[];
/** The worker's output, shown on the task's Logs tab and nowhere else. */
export const OUTPUT_EVENT_TYPES = ["log", "progress"] as const satisfies readonly TaskEventType[];
/** What the task's timeline shows: its decisions and faults, everything but the worker's output. */
export const TIMELINE_EVENT_TYPES = TASK_EVENT_TYPES.filter(
  (t): t is Exclude<TaskEventType, (typeof OUTPUT_EVENT_TYPES)[number]> =>
    !(OUTPUT_EVENT_TYPES as readonly string[]).includes(t),
);
/** What the task's Logs tab shows: the worker's output with the agency's notes on tries, losses and breakers. */
export const LOG_EVENT_TYPES = [
  "log",
  "progress",
  "attempt_try_failed",
  "attempt_lost",
  "worker_breaker",
] as const satisfies readonly TaskEventType[];

/** One task event as the API and subscriptions deliver it. `seq` is global and strictly increasing. */
export interface TaskEventDto {
  seq: string;
  taskId: string;
  type: TaskEventType;
  fromState: TaskState | null;
  toState: TaskState | null;
  actor: string;
  data: Record<string, unknown>;
  createdAt: Date;
}

/** Most events one `tasks.events` page returns. */
export const EVENT_PAGE_MAX = 1_000;

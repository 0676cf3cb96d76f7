import type { TaskState } from "./task-state.js";

/** Kinds of entries in a task's append-only event log. Later capabilities add their own kinds. */
export const TASK_EVENT_TYPES = ["created", "state_changed"] as const;
export type TaskEventType = (typeof TASK_EVENT_TYPES)[number] | (string & {});

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

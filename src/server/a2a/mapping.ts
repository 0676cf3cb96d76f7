import type { Task as A2ATask, Artifact, Message, Part, TaskStatus } from "@a2a-js/sdk";
import { TaskState as A2AState, Role } from "@a2a-js/sdk";
import { LIMITS, type TaskSpec, taskSpecSchema } from "../../shared/task-spec.js";
import type { TaskState } from "../../shared/task-state.js";
import type { TaskService } from "../tasks/service.js";

/** An agency task as tasks.get returns it: what an A2A Task is made from. */
export type AgencyTask = Awaited<ReturnType<TaskService["get"]>>;

/**
 * How an agency task's state reads in A2A. The agency's verdict states are decisions of its council, so:
 * `accepted` is done; `rejected` and `failed` ended without a result the agency stands by; `changes_requested`
 * (at rest only once the automatic re-dispatches are used up) waits for someone to decide, which A2A
 * calls input-required: a message to the task asks for another attempt (tasks.retry, with the council's
 * critique). `canceling` is still working until the worker has stopped. `awaiting_approval` is still the
 * agency's work, not the client's turn: an operator approves or rejects the council's accepted result
 * (APPROVAL_POLICY), so it reads as working and a stream goes on until the decision.
 */
export const A2A_STATE_OF: Record<TaskState, A2AState> = {
  queued: A2AState.TASK_STATE_SUBMITTED,
  running: A2AState.TASK_STATE_WORKING,
  awaiting_approval: A2AState.TASK_STATE_WORKING,
  canceling: A2AState.TASK_STATE_WORKING,
  accepted: A2AState.TASK_STATE_COMPLETED,
  changes_requested: A2AState.TASK_STATE_INPUT_REQUIRED,
  rejected: A2AState.TASK_STATE_FAILED,
  failed: A2AState.TASK_STATE_FAILED,
  canceled: A2AState.TASK_STATE_CANCELED,
};

/** The agency states behind each A2A state (for ListTasks' status filter). */
export function agencyStatesOf(state: A2AState): TaskState[] {
  return (Object.entries(A2A_STATE_OF) as [TaskState, A2AState][]).filter(([, s]) => s === state).map(([k]) => k);
}

/** Where a stream of a task's updates ends: the A2A terminal states, and input-required (the client's turn). */
export const STREAM_END_STATES: readonly A2AState[] = [
  A2AState.TASK_STATE_COMPLETED,
  A2AState.TASK_STATE_FAILED,
  A2AState.TASK_STATE_CANCELED,
  A2AState.TASK_STATE_REJECTED,
  A2AState.TASK_STATE_INPUT_REQUIRED,
];

/** A2A names for log lines and error messages (`completed`, `input-required`), not enum numbers. */
export function a2aStateName(state: A2AState | undefined): string {
  if (state === undefined) return "unknown";
  return (A2AState[state] ?? String(state))
    .replace(/^TASK_STATE_/, "")
    .toLowerCase()
    .replace(/_/g, "-");
}

export const textPart = (value: string, mediaType = "text/plain"): Part => ({
  content: { $case: "text", value },
  mediaType,
  filename: "",
  metadata: undefined,
});

const dataPart = (value: unknown): Part => ({
  content: { $case: "data", value },
  mediaType: "application/json",
  filename: "",
  metadata: undefined,
});

/** What the agency says about a task in its current state: the status message's text. */
export function statusText(t: AgencyTask): string {
  const reason = t.stateReason ? `: ${t.stateReason}` : "";
  switch (t.state) {
    case "queued":
      return t.waitingReason ? `Queued: ${t.waitingReason}` : `Queued for attempt ${t.attempt + 1}.`;
    case "running":
      return `Running attempt ${t.attempt}.`;
    case "canceling":
      return `Cancel requested by ${t.cancelRequestedBy ?? "an operator"}${t.cancelReason ? `: ${t.cancelReason}` : ""}; waiting for the worker to stop.`;
    case "awaiting_approval":
      return `The council accepted attempt ${t.attempt}; waiting for an operator's approval before the result is final.`;
    case "accepted": {
      const summary = t.attempts.at(-1)?.summary;
      return `Accepted by the council${summary ? `: ${summary}` : "."}`;
    }
    case "changes_requested":
      return `The council requested changes${reason}. Send a message to this task to ask for another attempt with the council's critique, or have an operator decide.`;
    case "rejected":
      return `Rejected by the council${reason}`;
    case "failed":
      return `Failed${reason}`;
    case "canceled": {
      const how = t.cancelConfirmed === false ? " (the worker did not confirm it stopped)" : "";
      return `Canceled${t.cancelReason ? `: ${t.cancelReason}` : ""}${how}`;
    }
  }
}

export function statusOf(t: AgencyTask, contextId: string): TaskStatus {
  return {
    state: A2A_STATE_OF[t.state],
    message: {
      messageId: `${t.id}:${t.state}:${t.updatedAt.getTime()}`,
      contextId,
      taskId: t.id,
      role: Role.ROLE_AGENT,
      parts: [textPart(statusText(t))],
      metadata: undefined,
      extensions: [],
      referenceTaskIds: [],
    },
    timestamp: t.updatedAt.toISOString(),
  };
}

/** The judged attempt's artifacts: a file's content as text, its diff as text/x-diff, a deletion as data. */
export function artifactsOf(t: AgencyTask): Artifact[] {
  return t.artifacts.map((a) => {
    const parts: Part[] = [];
    if (a.content !== null) parts.push(textPart(a.content));
    if (a.diff !== null) parts.push(textPart(a.diff, "text/x-diff"));
    if (parts.length === 0) parts.push(dataPart({ path: a.path, operation: a.operation }));
    return {
      artifactId: a.id,
      name: a.path,
      description: `${a.operation} ${a.path} (+${a.linesAdded} −${a.linesRemoved})`,
      parts,
      metadata: { path: a.path, operation: a.operation, linesAdded: a.linesAdded, linesRemoved: a.linesRemoved },
      extensions: [],
    };
  });
}

/**
 * The A2A view of an agency task in its context (the one the client named when it created the task, else
 * the task's own id). Every field comes from the agency's rows; `history` is empty (the agency keeps the
 * task's spec, which `metadata.agency` summarizes, not the messages that made it).
 */
export function toA2ATask(t: AgencyTask, contextId: string): A2ATask {
  return {
    id: t.id,
    contextId,
    status: statusOf(t, contextId),
    artifacts: artifactsOf(t),
    history: [],
    metadata: {
      agency: {
        title: t.title,
        state: t.state,
        attempt: t.attempt,
        priority: t.priority,
        riskTier: t.riskTier,
        mode: t.mode,
        capability: t.capability,
        createdBy: t.createdBy,
        verdict: t.verdict?.verdict ?? null,
      },
    },
  };
}

const SPEC_FIELDS = Object.keys(taskSpecSchema.shape);

/**
 * A task spec from an A2A message: its text parts are the description (and the first line the title),
 * and one data part may carry a spec as tasks.create takes it (its own `title` and `description` win).
 * Returns the message for the client when the message does not make a valid spec.
 */
export function specFromMessage(message: Message): { ok: true; spec: TaskSpec } | { ok: false; error: string } {
  const texts: string[] = [];
  const data: unknown[] = [];
  for (const [i, part] of message.parts.entries()) {
    const content = part.content;
    if (content?.$case === "text") texts.push(content.value);
    else if (content?.$case === "data") data.push(content.value);
    else {
      return {
        ok: false,
        error: `Part ${i} is ${content ? `a ${content.$case} part` : "empty"}: the agency takes text parts (the task's description) and one data part (a task spec); files go in the spec's input (input.files for the reference worker).`,
      };
    }
  }
  if (data.length > 1) return { ok: false, error: "Send at most one data part (the task spec)." };
  const given = data[0] ?? {};
  if (typeof given !== "object" || given === null || Array.isArray(given)) {
    return { ok: false, error: "The data part must be a JSON object: a task spec as tasks.create takes it." };
  }
  const unknown = Object.keys(given).filter((k) => !SPEC_FIELDS.includes(k));
  if (unknown.length) {
    return {
      ok: false,
      error: `Unknown task spec field${unknown.length > 1 ? "s" : ""} ${unknown.map((k) => JSON.stringify(k.slice(0, 100))).join(", ")} in the data part; the fields are: ${SPEC_FIELDS.join(", ")}.`,
    };
  }
  const text = texts.join("\n\n").trim();
  const fields = given as Record<string, unknown>;
  const candidate = {
    ...fields,
    title: fields.title ?? titleFrom(text),
    description: fields.description ?? text,
  };
  if (candidate.title === undefined) {
    return {
      ok: false,
      error:
        "The message has no text and its data part no title: describe the task in a text part (its first line is the title), or give a title in the data part.",
    };
  }
  const parsed = taskSpecSchema.safeParse(candidate);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.map(String).join(".") || "spec"}: ${i.message}`);
    return { ok: false, error: `The message does not make a valid task: ${issues.join("; ")}.` };
  }
  return { ok: true, spec: parsed.data };
}

/** The first non-empty line, cut to the title's limit. */
function titleFrom(text: string): string | undefined {
  const line = text
    .split("\n")
    .map((l) => l.trim())
    .find((l) => l.length > 0);
  if (!line) return undefined;
  return line.length > LIMITS.title ? `${line.slice(0, LIMITS.title - 1)}…` : line;
}

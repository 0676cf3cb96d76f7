import type { Task as A2ATask, TaskStatus } from "@a2a-js/sdk";
import { TaskNotFoundError } from "@a2a-js/sdk/errors";
import { AgentEvent, type AgentExecutionEvent } from "@a2a-js/sdk/server";
import { STATE_EVENT_TYPES } from "../../shared/task-events.js";
import type { TaskEventHub } from "../events/task-event-hub.js";
import type { TaskService } from "../tasks/service.js";
import { STREAM_END_STATES } from "./mapping.js";
import type { AgencyTaskStore } from "./store.js";

export interface FollowDeps {
  tasks: TaskService;
  hub: TaskEventHub;
  store: AgencyTaskStore;
}

const statusKey = (s: TaskStatus | undefined) =>
  `${s?.state}|${s?.message?.parts.map((p) => (p.content?.$case === "text" ? p.content.value : "")).join("\n")}`;

export const endsStream = (t: A2ATask) => t.status !== undefined && STREAM_END_STATES.includes(t.status.state);

/**
 * A task as it moves, in A2A events: the task as it is now, then an artifact-update for each artifact of
 * a judged attempt (before the status that announces the verdict) and a status-update for each change of
 * state, until the task reaches a terminal state or input-required, or `signal` aborts.
 *
 * It follows the task's state events through the task event hub (what tasks.onEvent serves), from the
 * last one already reflected in the first snapshot, so nothing committed in between is missed; each event
 * re-reads the task, so what is sent is what tasks/get would answer at that moment.
 */
export async function* followTask(
  deps: FollowDeps,
  taskId: string,
  signal: AbortSignal,
): AsyncGenerator<AgentExecutionEvent> {
  const kinds = [...STATE_EVENT_TYPES];
  const { through } = await deps.tasks.events({ taskId, kinds, limit: 1 });
  const snapshot = await deps.store.a2aTask(taskId);
  if (!snapshot) throw new TaskNotFoundError(`Task ${taskId} does not exist.`);
  yield AgentEvent.task(snapshot);
  if (endsStream(snapshot)) return;
  const sent = new Set(snapshot.artifacts.map((a) => a.artifactId));
  let shown = statusKey(snapshot.status);
  for await (const _event of deps.hub.subscribe({ filter: { taskId, kinds }, lastEventId: through, signal })) {
    const task = await deps.store.a2aTask(taskId);
    if (!task) return;
    for (const artifact of task.artifacts) {
      if (sent.has(artifact.artifactId)) continue;
      sent.add(artifact.artifactId);
      yield AgentEvent.artifactUpdate({
        taskId,
        contextId: task.contextId,
        artifact,
        append: false,
        lastChunk: true,
        metadata: undefined,
      });
    }
    const key = statusKey(task.status);
    if (key !== shown) {
      shown = key;
      yield AgentEvent.statusUpdate({
        taskId,
        contextId: task.contextId,
        status: task.status,
        metadata: task.metadata,
      });
    }
    if (endsStream(task)) return;
  }
}

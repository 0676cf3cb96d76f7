import type { TRPCClient } from "@trpc/client";
import type { AppRouter } from "../../src/server/router.js";
import type { TaskEventDto, TaskEventType } from "../../src/shared/task-events.js";

/** Every event of a task, oldest first, read page by page through `tasks.events` as any API client would. */
export async function allEvents(
  api: TRPCClient<AppRouter>,
  taskId: string,
  kinds?: TaskEventType[],
): Promise<TaskEventDto[]> {
  const out: TaskEventDto[] = [];
  let after = "0";
  for (;;) {
    const page = await api.tasks.events.query({ taskId, kinds, after, limit: 1_000 });
    out.push(...page.items);
    if (!page.hasMore || page.through === null) return out;
    after = page.through;
  }
}

/** `tasks.get` with the task's whole event log beside it (read after the task, so it is at least as new). */
export async function withEvents(api: TRPCClient<AppRouter>, input: { id: string }) {
  const task = await api.tasks.get.query(input);
  return { ...task, events: await allEvents(api, input.id) };
}

import { expect, type Page } from "@playwright/test";
import type { TaskSpecInput } from "../src/shared/task-spec.js";
import type { ServerProcess } from "./server.js";

/** No worker has this capability, so a task that needs it stays queued whatever else runs. */
export const NO_WORKER = "e2e-none";

export function createTask(server: ServerProcess, spec: Partial<TaskSpecInput> & { title: string }) {
  return server.api.tasks.create.mutate({ capability: NO_WORKER, ...spec });
}

/** Waits until the page's live connection is up, so later changes arrive as pushed events. */
export async function expectLive(page: Page) {
  await expect(page.locator("[data-connection]")).toHaveAttribute("data-connection", "connected");
}

export const taskRow = (page: Page, title: string) =>
  page.getByRole("row").filter({ has: page.getByRole("link", { name: title, exact: true }) });

import { randomUUID } from "node:crypto";
import { expect, test } from "./fixtures.js";
import { createTask } from "./helpers.js";

test("cancel a queued task from its detail page with a reason", async ({ page, server }) => {
  const task = await createTask(server, { title: "To be canceled" });
  await page.goto(`/tasks/${task.id}`);
  await expect(page.locator(".task-facts")).toContainText("Queued");

  await page.getByRole("button", { name: "Cancel task To be canceled" }).click();
  const dialog = page.getByRole("dialog");
  await expect(dialog).toBeVisible();
  await dialog.getByRole("button", { name: "Cancel task", exact: true }).click();
  await expect(dialog).toContainText("Give a reason");
  expect((await server.api.tasks.get.query({ id: task.id })).state).toBe("queued");

  await dialog.getByLabel("Reason").fill("Superseded by another task");
  await dialog.getByRole("button", { name: "Cancel task", exact: true }).click();
  await expect(dialog).toHaveCount(0);
  await expect(page.locator(".task-facts")).toContainText("Canceled");
  // The state machine lets an operator retry a canceled task, not cancel it again.
  await expect(page.getByRole("button", { name: /^Retry/ })).toBeVisible();
  await expect(page.getByRole("button", { name: /^Cancel task/ })).toHaveCount(0);

  await page.getByRole("tab", { name: /Timeline/ }).click();
  const changes = page.locator('[data-event-type="state_changed"]');
  await expect(changes).toHaveCount(2);
  await expect(changes.nth(0)).toContainText("Queued");
  await expect(changes.nth(0)).toContainText("Canceling");
  await expect(changes.nth(0)).toContainText("Reason: Superseded by another task");
  await expect(changes.nth(1)).toContainText("Canceled");

  const stored = await server.api.tasks.get.query({ id: task.id });
  expect(stored.state).toBe("canceled");
  expect(stored.stateReason).toBe("Superseded by another task");
});

test("an unknown task id shows a not-found message", async ({ page }) => {
  await page.goto(`/tasks/${randomUUID()}`);
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Task not found");
  await expect(page.getByRole("alert")).toContainText("does not exist");
});

test("cancel from the list with a reason, then retry, as the state machine allows", async ({ page, server }) => {
  const task = await createTask(server, { title: "Cancel me from the list" });
  await page.goto("/tasks");
  const row = page.getByRole("row").filter({ hasText: "Cancel me from the list" });
  await expect(row).toContainText("Queued");
  await expect(row.getByRole("button", { name: /^Retry/ })).toHaveCount(0);

  await row.getByRole("button", { name: /^Cancel task/ }).click();
  const dialog = page.getByRole("dialog");
  await dialog.getByLabel("Reason").fill("Wrong repository");
  await dialog.getByRole("button", { name: "Cancel task", exact: true }).click();
  await expect(row).toContainText("Canceled");
  await expect(row.getByRole("button", { name: /^Cancel task/ })).toHaveCount(0);

  await row.getByRole("button", { name: /^Retry/ }).click();
  await expect(row).not.toContainText("Canceled");
  const stored = await server.api.tasks.events.query({ taskId: task.id, kinds: ["created", "state_changed"] });
  expect(stored.items.map((e) => e.toState)).toEqual(["queued", "canceling", "canceled", "queued"]);
});

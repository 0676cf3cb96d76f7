import { expect, test } from "./fixtures.js";
import { createTask } from "./helpers.js";

test.describe.configure({ timeout: 300_000 });

test("a worker's page: its tasks and history; trip with the dialog (reason required), reset, pause and resume", async ({
  page,
  server,
}) => {
  const ran = await createTask(server, {
    title: "Ran on the reference worker",
    capability: "script",
    input: { script: "echo hi > hi.txt" },
  });
  await expect
    .poll(async () => (await server.api.tasks.get.query({ id: ran.id })).state, { timeout: 120_000 })
    .toBe("accepted");
  const [reference] = await server.api.workers.list.query();
  if (!reference) throw new Error("the server has no worker");

  await page.goto("/workers");
  await page.getByRole("link", { name: "reference", exact: true }).click();
  await expect(page).toHaveURL(new RegExp(`/workers/${reference.id}$`));
  await expect(page.getByRole("heading", { level: 1, name: "reference" })).toBeVisible();
  await expect(page.locator("[data-dispatch]")).toHaveText("Taking work");
  await expect(page.locator(".breaker-badge")).toHaveText("Closed");
  await expect(page.locator(".health-badge")).toHaveText("Healthy", { timeout: 20_000 });

  // The tasks it ran, each linking to its task.
  const attempts = page.locator("table.worker-attempts");
  await expect(attempts.getByRole("link", { name: "Ran on the reference worker" })).toBeVisible();
  await expect(attempts.locator("tbody tr").first()).toContainText("Completed");
  // Its activity, as charts and as a table.
  await expect(page.getByRole("figure", { name: "Attempts and failed share" })).toBeVisible();
  await page.getByText("The same figures as a table").click();
  await expect(page.locator(".activity-table tbody tr")).toHaveCount(1);

  // Trip: the dialog refuses to send without a reason, and nothing changes.
  await page.getByRole("button", { name: "Trip breaker", exact: true }).click();
  const dialog = page.getByRole("dialog", { name: "Trip the breaker of reference?" });
  await expect(dialog).toBeVisible();
  await dialog.getByRole("button", { name: "Trip breaker", exact: true }).click();
  await expect(dialog.getByRole("alert")).toHaveText("Give a reason for tripping the breaker");
  expect((await server.api.workers.get.query({ id: reference.id })).breaker.state).toBe("closed");
  await dialog.getByLabel("Reason").fill("returns stale results");
  await dialog.getByRole("button", { name: "Trip breaker", exact: true }).click();
  await expect(dialog).toHaveCount(0);
  await expect(page.locator(".breaker-badge")).toHaveText("Tripped by hand");
  const history = page.locator("table.worker-history");
  const tripRow = history.locator('tr[data-kind="trip"]');
  await expect(tripRow).toContainText("returns stale results");
  await expect(tripRow).toContainText("closed → tripped");
  await expect(tripRow).toContainText("admin");

  await page.getByRole("button", { name: "Reset breaker", exact: true }).click();
  const reset = page.getByRole("dialog", { name: "Reset the breaker of reference?" });
  await reset.getByRole("button", { name: "Reset breaker", exact: true }).click();
  await expect(reset).toHaveCount(0);
  await expect(page.locator(".breaker-badge")).toHaveText("Closed");
  await expect(history.locator('tr[data-kind="reset"]')).toContainText("tripped → closed");

  // Pause, then resume.
  await page.getByRole("button", { name: "Pause", exact: true }).click();
  const pause = page.getByRole("dialog", { name: "Pause reference?" });
  await pause.getByLabel("Reason (optional)").fill("moving hosts");
  await pause.getByRole("button", { name: "Pause worker", exact: true }).click();
  await expect(pause).toHaveCount(0);
  await expect(page.locator("[data-dispatch]")).toHaveText("Paused");
  await expect(page.locator(".worker-facts")).toContainText("by admin: moving hosts");
  await expect(history.locator('tr[data-kind="pause"]')).toContainText("moving hosts");
  expect((await server.api.workers.get.query({ id: reference.id })).dispatch.state).toBe("paused");

  // A task for its capability now waits, saying why.
  const waiting = await createTask(server, {
    title: "Waits for the paused worker",
    capability: "script",
    input: { script: "echo later > later.txt" },
  });
  await expect
    .poll(async () => (await server.api.tasks.get.query({ id: waiting.id })).waitingReason, { timeout: 30_000 })
    .toContain("reference: paused by an admin");

  await page.getByRole("button", { name: "Resume", exact: true }).click();
  const resume = page.getByRole("dialog", { name: "Resume reference?" });
  await resume.getByRole("button", { name: "Resume worker", exact: true }).click();
  await expect(resume).toHaveCount(0);
  await expect(page.locator("[data-dispatch]")).toHaveText("Taking work");
  await expect(history.locator('tr[data-kind="resume"]')).toContainText("paused → active");
  await expect
    .poll(async () => (await server.api.tasks.get.query({ id: waiting.id })).state, { timeout: 120_000 })
    .toBe("accepted");
  await expect(attempts.getByRole("link", { name: "Waits for the paused worker" })).toBeVisible({ timeout: 20_000 });
});

test("an unknown worker's page says it is not found", async ({ page }) => {
  await page.goto("/workers/00000000-0000-4000-8000-000000000000");
  await expect(page.getByRole("heading", { level: 1, name: "Worker not found" })).toBeVisible();
  await page.getByRole("link", { name: "Back to the workers" }).click();
  await expect(page).toHaveURL(/\/workers$/);
});

import type { Page } from "@playwright/test";
import { expect, test } from "./fixtures.js";
import { createTask } from "./helpers.js";
import type { ServerProcess } from "./server.js";

/** A tier 1 task the council accepts (a file and a passing check): it waits for approval under the default policy. */
async function awaitingTask(server: ServerProcess, title: string, file: string) {
  const task = await createTask(server, {
    title,
    capability: "script",
    riskTier: 1,
    mode: "feature",
    input: { script: `printf 'approved content\\n' > ${file}` },
    acceptanceCriteria: [{ text: `${file} exists`, check: { kind: "command", command: `test -f ${file}` } }],
  });
  await expect
    .poll(async () => (await server.api.tasks.get.query({ id: task.id })).state, { timeout: 120_000 })
    .toBe("awaiting_approval");
  return task;
}

/** An operator an admin created signs in the first time and chooses their password. */
async function firstSignIn(page: Page, username: string, initial: string, chosen: string) {
  await page.goto("/sign-in");
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(initial);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page).toHaveURL(/\/account\/password\?next=/);
  await page.getByLabel("Current password").fill(initial);
  await page.getByLabel("New password", { exact: true }).fill(chosen);
  await page.getByLabel("New password again").fill(chosen);
  await page.getByRole("button", { name: "Change password" }).click();
  await expect(page).toHaveURL(/\/tasks$/);
}

test("the approval queue: the creator is held back by four eyes; another operator approves one and rejects one with a note", async ({
  page,
  browser,
  server,
}) => {
  test.setTimeout(240_000);
  // The admin creates both (through the API): four eyes keeps the admin from deciding on them.
  const first = await awaitingTask(server, "Add the greeting file", "greeting.txt");
  const second = await awaitingTask(server, "Add the farewell file", "farewell.txt");

  await page.goto("/approvals");
  await expect(page.getByRole("heading", { level: 1, name: "Approvals" })).toBeVisible();
  await expect(page.getByTestId("approvals-count")).toContainText("2");
  const rows = page.getByTestId("approval-row");
  await expect(rows).toHaveCount(2);
  // Oldest first, and the oldest is the one under review.
  await expect(rows.first()).toContainText("Add the greeting file");
  const review = page.getByTestId("approval-review");
  await expect(review).toContainText("greeting.txt");
  await expect(review).toContainText("+approved content");
  await expect(review.getByText("Acceptance criteria")).toBeVisible();
  await expect(review.getByRole("button", { name: /^Approve/ })).toBeDisabled();
  await expect(review.getByRole("button", { name: /^Reject/ })).toBeDisabled();
  await expect(review.getByTestId("approval-refusal")).toContainText("Four eyes: you created this task");
  // The task page shows the waiting state with the same refusal.
  await page.goto(`/tasks/${first.id}`);
  await expect(page.locator(".task-facts")).toContainText("Awaiting approval");
  await expect(page.getByTestId("approval-refusal")).toContainText("Four eyes");

  await server.api.users.create.mutate({ username: "otto", role: "operator", password: "otto-initial-password" });
  const context = await browser.newContext({ baseURL: server.url });
  try {
    const otto = await context.newPage();
    await firstSignIn(otto, "otto", "otto-initial-password", "otto-own-password");
    await otto.getByRole("link", { name: /^Approvals/ }).click();
    await expect(otto).toHaveURL(/\/approvals/);
    const queue = otto.getByTestId("approval-review");
    await expect(queue).toContainText("greeting.txt");
    await expect(queue.getByTestId("approval-refusal")).toHaveCount(0);
    await queue.getByLabel("Note (optional when approving)").fill("Read the diff; fine.");
    await queue.getByRole("button", { name: /^Approve/ }).click();

    // The next waiting task comes up for review once the first is decided.
    await expect(otto.getByTestId("approval-row")).toHaveCount(1);
    await expect(queue).toContainText("farewell.txt");
    await expect
      .poll(async () => (await server.api.tasks.get.query({ id: first.id })).stateReason)
      .toBe("Approved by otto: Read the diff; fine.");
    expect((await server.api.tasks.get.query({ id: first.id })).state).toBe("accepted");

    await queue.getByRole("button", { name: /^Reject/ }).click();
    const dialog = otto.getByRole("dialog", { name: "Reject “Add the farewell file”" });
    // A reject without a note is refused before it reaches the server, and nothing changes.
    await dialog.getByRole("button", { name: "Reject task" }).click();
    await expect(dialog.getByRole("alert")).toContainText("Give a note");
    expect((await server.api.tasks.get.query({ id: second.id })).state).toBe("awaiting_approval");
    await dialog.getByLabel("Why is it rejected?").fill("The farewell belongs in the footer, not a file.");
    await dialog.getByRole("button", { name: "Reject task" }).click();
    await expect(dialog).toBeHidden();
    await expect(otto.getByTestId("approvals-empty")).toBeVisible();

    const rejected = await server.api.tasks.get.query({ id: second.id });
    expect(rejected).toMatchObject({
      state: "rejected",
      stateReason: "Rejected at approval by otto: The farewell belongs in the footer, not a file.",
    });
    const audit = await server.api.audit.list.query({ resourceType: "task", resourceId: second.id, limit: 50 });
    expect(audit.items.find((e) => e.action === "task.reject")).toMatchObject({ actorId: "otto" });
  } finally {
    await context.close();
  }
});

test("an operator approves from the task page; the task list filters by Awaiting approval", async ({
  page,
  browser,
  server,
}) => {
  test.setTimeout(180_000);
  const task = await awaitingTask(server, "Add the readme line", "readme.txt");
  await page.goto("/tasks?state=awaiting_approval");
  await expect(page.getByRole("link", { name: "Add the readme line", exact: true })).toBeVisible();

  await server.api.users.create.mutate({ username: "ida", role: "operator", password: "ida-initial-password" });
  const context = await browser.newContext({ baseURL: server.url });
  try {
    const ida = await context.newPage();
    await firstSignIn(ida, "ida", "ida-initial-password", "ida-own-password");
    await ida.goto(`/tasks/${task.id}`);
    await expect(ida.locator(".task-facts")).toContainText("Awaiting approval");
    await ida.getByRole("button", { name: /^Approve/ }).click();
    await expect(ida.locator(".task-facts")).toContainText("Accepted");
    await expect(ida.getByTestId("approval-actions")).toHaveCount(0);
    expect((await server.api.tasks.get.query({ id: task.id })).stateReason).toBe("Approved by ida.");
  } finally {
    await context.close();
  }
});

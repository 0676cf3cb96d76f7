import { expect, test } from "./fixtures.js";
import { createTask, expectLive, NO_WORKER, taskRow } from "./helpers.js";

// These run on the reference worker that the server starts (capability `script`).

test("a submitted script runs on the reference worker: live log line, accepted, hello.txt with its diff", async ({
  page,
  server,
}) => {
  await page.goto("/tasks/new");
  await page.getByLabel("Title", { exact: true }).fill("Say hello");
  await page.getByLabel("Required capability").fill("script");
  await page.getByLabel("Script", { exact: true }).fill("echo hello > hello.txt && echo wrote hello.txt");
  await page.getByRole("button", { name: "Submit task" }).click();
  await expect(page).toHaveURL(/\/tasks\/[0-9a-f-]{36}$/);
  const id = page.url().split("/").at(-1) as string;

  await expect(page.locator(".task-facts")).toContainText("Accepted", { timeout: 45_000 });

  await page.getByRole("tab", { name: "Logs" }).click();
  const log = page.getByRole("log", { name: "Worker output" });
  await expect(log.locator('[data-stream="stdout"]')).toContainText("wrote hello.txt");

  await page.getByRole("tab", { name: /^Attempts/ }).click();
  const attempt = page.locator('.attempt[data-attempt="1"]');
  await expect(attempt).toContainText("reference");
  await expect(attempt.locator(".verdict-badge")).toHaveText("Accepted");

  await page.getByRole("tab", { name: /^Artifacts/ }).click();
  const file = page.locator('[data-path="hello.txt"]');
  await expect(file).toContainText("created");
  await expect(file.locator(".line-counts")).toHaveText("+1 −0");
  await expect(file.locator(".diff-add").filter({ hasText: /^added: \+hello\s*$/ })).toHaveCount(1);
  await file.getByRole("button", { name: "Content" }).click();
  await expect(file.locator(".file-content")).toHaveText("hello\n");

  await page.getByRole("tab", { name: "Verdict" }).click();
  await expect(page.getByRole("tabpanel").locator(".verdict-badge")).toHaveText("Accepted");

  const stored = await server.api.tasks.get.query({ id });
  expect(stored.state).toBe("accepted");
  expect(stored.artifacts.map((a) => [a.path, a.operation])).toEqual([["hello.txt", "create"]]);
});

test("output with a TODO comes back Changes requested; the Verdict tab shows the finding at path:line", async ({
  page,
  server,
}) => {
  // Three attempts (two automatic re-dispatches) on a machine that may be busy.
  test.setTimeout(180_000);
  const task = await createTask(server, {
    title: "Leaves a TODO",
    capability: "script",
    input: { script: "printf 'first line\\n// TODO: implement\\n' > todo.js" },
  });
  await page.goto(`/tasks/${task.id}`);
  // The council re-dispatches with its critique a few times before it leaves the task to an operator.
  await expect
    .poll(
      async () => {
        const t = await server.api.tasks.get.query({ id: task.id });
        return t.state === "changes_requested" && t.attempts.every((a) => a.finishedAt !== null);
      },
      { timeout: 120_000 },
    )
    .toBe(true);
  await expect(page.locator(".task-facts")).toContainText("Changes requested", { timeout: 30_000 });

  await page.getByRole("tab", { name: "Verdict" }).click();
  const panel = page.getByRole("tabpanel");
  await expect(panel.locator(".verdict-badge").first()).toHaveText("Changes requested");
  const judge = panel.locator('[data-judge="placeholder"]');
  await expect(judge).toContainText("Failed");
  await expect(judge).toContainText("Hard fail");
  const finding = judge.locator(".finding").first();
  await expect(finding.locator(".finding-location")).toHaveText("todo.js:2");
  await expect(finding).toContainText("TODO: implement");

  // Later attempts carry the earlier verdict's findings as their critique.
  const stored = await server.api.tasks.get.query({ id: task.id });
  if (stored.attempts.length > 1) {
    await page.getByRole("tab", { name: /^Attempts/ }).click();
    await expect(page.locator('[data-attempt="2"] .critique')).toContainText("Critique it was given, from attempt 1");
  }
});

test("a running task is canceled from its page: Canceled, confirmed by the worker, with who and why", async ({
  page,
  server,
}) => {
  const task = await createTask(server, { title: "Sleeps", capability: "script", input: { script: "sleep 30" } });
  await page.goto(`/tasks/${task.id}`);
  await expectLive(page);
  await expect(page.locator(".task-facts")).toContainText("Running", { timeout: 20_000 });

  await page.getByRole("button", { name: "Cancel task Sleeps" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.getByLabel("Reason").fill("Taking too long");
  await dialog.getByRole("button", { name: "Cancel task", exact: true }).click();

  await expect(page.locator(".task-facts")).toContainText("Canceled", { timeout: 20_000 });
  const outcome = page.getByTestId("cancel-outcome");
  await expect(outcome).toContainText("Canceled, confirmed.");
  await expect(outcome).toContainText("Taking too long");
  await expect(outcome).toContainText(`Requested by ${server.admin.username}`);
  const stored = await server.api.tasks.get.query({ id: task.id });
  expect(stored.cancelConfirmed).toBe(true);
});

test("a queued task that no worker can take says why it waits", async ({ page, server }) => {
  const task = await createTask(server, { title: "Nobody can", capability: NO_WORKER });
  await page.goto(`/tasks/${task.id}`);
  await expect(page.getByTestId("waiting-reason")).toContainText(NO_WORKER, { timeout: 20_000 });
});

test("bulk cancel by filter shows the count first, then cancels every match and reports each", async ({
  page,
  server,
}) => {
  for (const title of ["bulk one", "bulk two", "bulk three"]) await createTask(server, { title });
  const other = await createTask(server, { title: "Keep me" });
  await page.goto("/tasks?q=bulk");
  await expect(page.getByRole("row")).toHaveCount(4);

  await page.getByRole("button", { name: "Cancel all matching filter…" }).click();
  const dialog = page.getByRole("dialog");
  await expect(dialog.getByTestId("bulk-count")).toContainText("3 tasks match the current filter");
  await dialog.getByRole("button", { name: "Cancel 3 tasks" }).click();
  await expect(dialog.getByRole("alert")).toContainText("Give a reason");
  await dialog.getByLabel("Reason").fill("Wrong batch");
  await dialog.getByRole("button", { name: "Cancel 3 tasks" }).click();
  await expect(dialog).toHaveCount(0);

  await expect(page.getByTestId("bulk-outcome")).toContainText("Cancel: 3 done, 0 skipped.");
  for (const title of ["bulk one", "bulk two", "bulk three"]) {
    await expect(taskRow(page, title)).toContainText("Canceled");
  }
  expect((await server.api.tasks.get.query({ id: other.id })).state).toBe("queued");
});

test("bulk by selection: select all on the page, cancel; a second cancel skips each with the reason", async ({
  page,
  server,
}) => {
  await createTask(server, { title: "sel A" });
  await createTask(server, { title: "sel B" });
  await page.goto("/tasks");
  await page.getByRole("checkbox", { name: "Select sel A" }).check();
  await expect(page.getByText("1 selected")).toBeVisible();
  await page.getByRole("checkbox", { name: "Select every task shown" }).check();
  await expect(page.getByText("2 selected")).toBeVisible();

  await page.getByRole("button", { name: "Cancel selected" }).click();
  let dialog = page.getByRole("dialog");
  await dialog.getByLabel("Reason").fill("Not needed");
  await dialog.getByRole("button", { name: "Cancel 2 tasks" }).click();
  await expect(page.getByTestId("bulk-outcome")).toContainText("2 done, 0 skipped");
  await expect(page.getByText("None selected")).toBeVisible();

  await page.getByRole("checkbox", { name: "Select every task shown" }).check();
  await page.getByRole("button", { name: "Cancel selected" }).click();
  dialog = page.getByRole("dialog");
  await dialog.getByLabel("Reason").fill("Again");
  await dialog.getByRole("button", { name: "Cancel 2 tasks" }).click();
  const outcome = page.getByTestId("bulk-outcome");
  await expect(outcome).toContainText("0 done, 2 skipped");
  await expect(outcome.getByRole("listitem")).toHaveCount(2);
  await expect(outcome.getByRole("listitem").first()).toContainText(/sel [AB]: .*canceled/i);

  await page.getByRole("checkbox", { name: "Select every task shown" }).check();
  await page.getByRole("button", { name: "Retry selected" }).click();
  dialog = page.getByRole("dialog");
  await dialog.getByRole("button", { name: "Retry 2 tasks" }).click();
  await expect(page.getByTestId("bulk-outcome")).toContainText("Retry: 2 done, 0 skipped");
  await expect(taskRow(page, "sel A")).toContainText("Queued");
});

test("the log follows new lines until the reader scrolls up, and follows again on request", async ({
  page,
  server,
}) => {
  const task = await createTask(server, {
    title: "Chatty",
    capability: "script",
    input: { script: "for i in $(seq 1 300); do echo line $i; sleep 0.1; done" },
  });
  await page.goto(`/tasks/${task.id}?tab=logs`);
  const box = page.getByRole("log", { name: "Worker output" });
  const lines = box.locator('[data-stream="stdout"]');
  await expect.poll(() => lines.count(), { timeout: 30_000 }).toBeGreaterThan(40);
  const distanceFromBottom = () => box.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight);
  await expect.poll(distanceFromBottom).toBeLessThan(30);
  await expect(page.getByTestId("log-follow")).toHaveText("Following new lines");

  // The reader scrolls up. Its scroll event is swallowed, as if a line arrived before the browser
  // dispatched it: the view must see from the position alone that the reader left the bottom.
  await box.evaluate((el) => {
    el.addEventListener("scroll", (e) => e.stopImmediatePropagation(), { capture: true, once: true });
    el.scrollTop = 0;
  });
  await expect(page.getByRole("button", { name: "Follow new lines" })).toBeVisible();
  const seen = await lines.count();
  await expect.poll(() => lines.count(), { timeout: 30_000 }).toBeGreaterThan(seen + 5);
  expect(await box.evaluate((el) => el.scrollTop)).toBe(0);

  await page.getByRole("button", { name: "Follow new lines" }).click();
  await expect.poll(distanceFromBottom).toBeLessThan(30);
  await expect(page.getByTestId("log-follow")).toBeVisible();
});

test("a long log shows its newest lines first and the earlier ones on request", async ({ page, server }) => {
  const task = await createTask(server, {
    title: "Long log",
    capability: "script",
    input: { script: "seq 1 700 | sed 's/^/row /'" },
  });
  await expect
    .poll(async () => (await server.api.tasks.get.query({ id: task.id })).state, { timeout: 45_000 })
    .toMatch(/^(accepted|rejected|changes_requested|failed)$/);
  await page.goto(`/tasks/${task.id}?tab=logs`);
  const lines = page.getByRole("log", { name: "Worker output" }).locator('[data-stream="stdout"] .log-text');
  await expect(lines.last()).toHaveText("row 700");
  await expect(lines.first()).not.toHaveText("row 1");
  expect(await lines.count()).toBeLessThan(700);

  await page.getByRole("button", { name: "Load earlier lines" }).click();
  await expect(lines).toHaveCount(700);
  await expect(lines.first()).toHaveText("row 1");
  await expect(page.getByRole("button", { name: "Load earlier lines" })).toHaveCount(0);
});

import { expect, signIn, test } from "./fixtures.js";
import { createTask, expectLive, NO_WORKER, taskRow } from "./helpers.js";

test("a second page sees a task created by the first appear, and its state change, without reloading", async ({
  page,
  browser,
  server,
}) => {
  const watcherContext = await browser.newContext({ baseURL: server.url });
  await signIn(watcherContext, server);
  const watcher = await watcherContext.newPage();
  try {
    await watcher.goto("/tasks");
    await expect(watcher.getByText("No tasks yet.")).toBeVisible();
    await expectLive(watcher);
    // Survives only as long as the page is not reloaded.
    await watcher.evaluate(() => {
      (window as unknown as { notReloaded: boolean }).notReloaded = true;
    });

    await page.goto("/tasks/new");
    await page.getByLabel("Title", { exact: true }).fill("Appears live");
    await page.getByLabel("Required capability").fill(NO_WORKER);
    await page.getByRole("button", { name: "Submit task" }).click();
    await expect(page).toHaveURL(/\/tasks\/[0-9a-f-]{36}$/);
    const id = page.url().split("/").at(-1) as string;

    const row = taskRow(watcher, "Appears live");
    await expect(row).toHaveCount(1);
    await expect(row).toContainText("Queued");

    await server.api.tasks.cancel.mutate({ id, reason: "changed from elsewhere" });
    await expect(row).toContainText("Canceled");
    // The first page shows it too, on its detail page.
    await expect(page.locator(".task-facts")).toContainText("Canceled");

    expect(await watcher.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);
  } finally {
    await watcherContext.close();
  }
});

test("a restart keeps the task, and the console reconnects on its own", async ({ page, server }) => {
  const task = await createTask(server, { title: "Survives a restart", description: "kept in PGlite" });
  await page.goto(`/tasks/${task.id}`);
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Survives a restart");
  await expectLive(page);

  await server.stop();
  await expect(page.locator("[data-connection]")).toHaveAttribute("data-connection", /reconnecting|offline/);
  await expect(page.locator(".status-pill").first()).toContainText("Unreachable", { timeout: 20_000 });

  await server.start();
  await expectLive(page);
  await page.reload();
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Survives a restart");
  await expect(page.getByRole("tabpanel")).toContainText("kept in PGlite");

  await page.goto("/tasks");
  await expect(taskRow(page, "Survives a restart")).toHaveCount(1);
  await expect(page.locator(".status-pill").first()).toContainText("Healthy");

  // After the restart the live stream works again: a new task shows up without a reload.
  await expectLive(page);
  await createTask(server, { title: "Created after the restart" });
  await expect(taskRow(page, "Created after the restart")).toHaveCount(1);
});

test("a state change on a task's page updates it and its timeline live, and reads no events again", async ({
  page,
  server,
}) => {
  const task = await createTask(server, { title: "Watched while it changes" });
  const eventReads: string[] = [];
  page.on("request", (r) => {
    if (new URL(r.url()).pathname.includes("tasks.events")) eventReads.push(r.url());
  });
  await page.goto(`/tasks/${task.id}?tab=timeline`);
  await expect(page.locator('[data-event-type="created"]')).toHaveCount(1);
  await expectLive(page);
  const reads = eventReads.length;
  expect(reads).toBeGreaterThan(0);

  await server.api.tasks.cancel.mutate({ id: task.id, reason: "changed while watched" });
  await expect(page.locator(".task-facts")).toContainText("Canceled");
  const changes = page.locator('[data-event-type="state_changed"]');
  await expect(changes).toHaveCount(2);
  await expect(changes.nth(0)).toContainText("Reason: changed while watched");
  // The new events came over the subscription; the task was refetched, its events were not.
  expect(eventReads.length).toBe(reads);
});

test("when the server goes away, an open task page keeps the task and its logs on screen", async ({ page, server }) => {
  const task = await server.api.tasks.create.mutate({
    title: "Read while offline",
    input: { script: "for i in 1 2 3; do echo offline line $i; done" },
  });
  await page.goto(`/tasks/${task.id}?tab=logs`);
  await expect(page.locator(".log-line").filter({ hasText: "offline line 3" })).toHaveCount(1, { timeout: 30_000 });
  await expectLive(page);

  await server.stop();
  await expect(page.locator(".status-pill").first()).toContainText("Unreachable", { timeout: 20_000 });
  // Coming back to the page (once its data is stale) refetches the task, which fails: the page says so above
  // what it had, where it used to show only "Could not load the task: Failed to fetch".
  const banner = page.getByRole("alert").filter({ hasText: "Showing the task as last loaded" });
  await expect
    .poll(
      async () => {
        await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Tasks" }).click();
        await page.goBack();
        await expect(page.getByRole("heading", { level: 1 })).toHaveText("Read while offline");
        return banner.count();
      },
      { timeout: 40_000 },
    )
    .toBe(1);
  await expect(banner).toContainText("The server cannot be reached");
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Read while offline");
  await expect(page.locator(".log-line").filter({ hasText: "offline line 3" })).toHaveCount(1);
  await expect(page.getByText("Failed to fetch")).toHaveCount(0);
  await expect(page.getByText("Could not load the task")).toHaveCount(0);

  await server.start();
  await expectLive(page);
  // Back online, the page refetches what it shows and the banner goes.
  await expect(banner).toHaveCount(0, { timeout: 20_000 });
});

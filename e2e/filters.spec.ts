import { expect, test } from "./fixtures.js";
import { createTask, taskRow } from "./helpers.js";

test("filters live in the URL, survive a reload, and can be saved as a view and applied", async ({ page, server }) => {
  await createTask(server, { title: "Alpha report", priority: "high" });
  await createTask(server, { title: "Alpha cleanup", priority: "low" });
  const beta = await createTask(server, { title: "Beta report", priority: "high" });
  await createTask(server, { title: "Gamma chore", priority: "high", description: "mentions a report inside" });
  await server.api.tasks.cancel.mutate({ id: beta.id, reason: "not needed" });

  await page.goto("/tasks");
  await expect(page.getByRole("row")).toHaveCount(5);

  // Filter checkboxes show the URL's state, which the router updates in a transition: click, then wait for it.
  for (const name of ["Queued", "High"]) {
    const box = page.getByRole("checkbox", { name, exact: true });
    await box.click();
    await expect(box).toBeChecked();
  }
  await page.getByLabel("Search title, description or task id").fill("report");
  await expect(page).toHaveURL(/[?&]q=report/);
  const url = new URL(page.url());
  expect(url.searchParams.get("state")).toBe("queued");
  expect(url.searchParams.get("priority")).toBe("high");

  const expectFiltered = async () => {
    await expect(taskRow(page, "Alpha report")).toHaveCount(1);
    await expect(taskRow(page, "Gamma chore")).toHaveCount(1);
    await expect(page.getByRole("row")).toHaveCount(3);
  };
  await expectFiltered();

  await page.reload();
  await expectFiltered();
  await expect(page.getByRole("checkbox", { name: "Queued", exact: true })).toBeChecked();
  await expect(page.getByRole("checkbox", { name: "High", exact: true })).toBeChecked();
  await expect(page.getByLabel("Search title, description or task id")).toHaveValue("report");

  // Opening the same address in a fresh page gives the same list.
  const shared = await page.context().newPage();
  await shared.goto(page.url());
  await expect(taskRow(shared, "Alpha report")).toHaveCount(1);
  await expect(shared.getByRole("row")).toHaveCount(3);
  await shared.close();

  await page.getByLabel("Save current filter as").fill("Queued high reports");
  await page.getByRole("button", { name: "Save view" }).click();
  const view = page.getByRole("button", { name: "Queued high reports", exact: true });
  await expect(view).toHaveAttribute("aria-pressed", "true");

  await page.getByRole("button", { name: "Clear filters" }).first().click();
  await expect(page).toHaveURL(/\/tasks$/);
  await expect(page.getByRole("row")).toHaveCount(5);
  await expect(view).toHaveAttribute("aria-pressed", "false");

  await view.click();
  await expectFiltered();
  expect(new URL(page.url()).searchParams.get("q")).toBe("report");
  await expect(page.getByLabel("Search title, description or task id")).toHaveValue("report");

  await page.getByRole("button", { name: "Delete view Queued high reports" }).click();
  await expect(view).toHaveCount(0);
  expect(await server.api.views.list.query()).toEqual([]);
});

test("the list pages with Load more, without gaps or repeats", async ({ page, server }) => {
  const titles = Array.from({ length: 57 }, (_, i) => `Paged task ${String(i + 1).padStart(2, "0")}`);
  for (const title of titles) await createTask(server, { title });

  await page.goto("/tasks?sort=created_asc");
  const links = page.locator("tbody").getByRole("link");
  await expect(links).toHaveCount(50);
  await expect(page.getByTestId("task-count")).toHaveText("57 tasks · 50 shown");
  await page.getByRole("button", { name: "Load more" }).click();
  await expect(links).toHaveCount(57);
  await expect(page.getByRole("button", { name: "Load more" })).toHaveCount(0);
  expect(await links.allTextContents()).toEqual(titles);
});

test("a repeated filter in the address applies every value, and the filter buttons are off on an empty list", async ({
  page,
  server,
}) => {
  await createTask(server, { title: "Repeat queued" });
  const canceled = await createTask(server, { title: "Repeat canceled" });
  await createTask(server, { title: "Repeat other" });
  await server.api.tasks.cancel.mutate({ id: canceled.id, reason: "for the filter" });
  await server.api.tasks.cancel.mutate({ id: (await createTask(server, { title: "Unrelated" })).id, reason: "x" });

  // The form other tools write (`state=a&state=b`) means the same as the console's own (`state=a,b`).
  await page.goto("/tasks?q=Repeat&state=canceled&state=queued");
  await expect(page.getByRole("row")).toHaveCount(4);
  await expect(page.getByRole("checkbox", { name: "Queued", exact: true })).toBeChecked();
  await expect(page.getByRole("checkbox", { name: "Canceled", exact: true })).toBeChecked();
  await expect(taskRow(page, "Repeat queued")).toContainText("Queued");
  await expect(taskRow(page, "Repeat canceled")).toContainText("Canceled");

  await page.goto("/tasks?q=matches-nothing-at-all");
  await expect(page.getByText("No tasks match these filters.")).toBeVisible();
  await expect(page.getByRole("button", { name: "Cancel all matching filter…" })).toBeDisabled();
  await expect(page.getByRole("button", { name: "Retry all matching filter…" })).toBeDisabled();
});

import { expect, test } from "./fixtures.js";
import { createTask, taskRow } from "./helpers.js";

test("the list shows its new columns and total, sorts by a clicked header (kept in the URL), and finds a task by id", async ({
  page,
  server,
}) => {
  await createTask(server, { title: "Sort low", priority: "low" });
  const critical = await createTask(server, { title: "Sort critical", priority: "critical" });
  await createTask(server, { title: "Sort medium", priority: "medium" });

  await page.goto("/tasks");
  for (const name of ["Worker", "Attempts", "Duration", "Last updated"]) {
    await expect(page.getByRole("columnheader", { name })).toBeVisible();
  }
  await expect(page.getByTestId("task-count")).toHaveText("3 tasks");
  const never = taskRow(page, "Sort low");
  // Never dispatched: no attempt, no worker, no run time.
  await expect(never.locator("td.col-number")).toHaveText("0");
  await expect(never.locator("td.col-worker")).toHaveText("—");
  await expect(never.locator("td.col-duration")).toHaveText("—");

  const titles = page.locator("tbody").getByRole("link");
  const priorityHeader = page.getByRole("columnheader", { name: "Priority", exact: true });
  const createdHeader = page.getByRole("columnheader", { name: "Created", exact: true });
  await expect(createdHeader).toHaveAttribute("aria-sort", "descending");
  await expect(priorityHeader).not.toHaveAttribute("aria-sort", /./);
  await expect(titles).toHaveText(["Sort medium", "Sort critical", "Sort low"]);

  await priorityHeader.getByRole("button").click();
  await expect(page).toHaveURL(/[?&]sort=priority_desc/);
  await expect(priorityHeader).toHaveAttribute("aria-sort", "descending");
  await expect(createdHeader).not.toHaveAttribute("aria-sort", /./);
  await expect(titles).toHaveText(["Sort critical", "Sort medium", "Sort low"]);

  await priorityHeader.getByRole("button").click();
  await expect(page).toHaveURL(/[?&]sort=priority_asc/);
  await expect(priorityHeader).toHaveAttribute("aria-sort", "ascending");
  await expect(titles).toHaveText(["Sort low", "Sort medium", "Sort critical"]);

  await createdHeader.getByRole("button").click();
  await expect(page).toHaveURL(/\/tasks$/);
  await expect(createdHeader).toHaveAttribute("aria-sort", "descending");
  await createdHeader.getByRole("button").click();
  await expect(page).toHaveURL(/[?&]sort=created_asc/);
  await page.reload();
  await expect(createdHeader).toHaveAttribute("aria-sort", "ascending");
  await expect(titles).toHaveText(["Sort low", "Sort critical", "Sort medium"]);

  await page.getByLabel("Search title, description or task id").fill(critical.id.slice(0, 8));
  await expect(page).toHaveURL(new RegExp(`[?&]q=${critical.id.slice(0, 8)}`));
  await expect(titles).toHaveText(["Sort critical"]);
  await expect(page.getByTestId("task-count")).toHaveText("1 task");
  await page.getByLabel("Search title, description or task id").fill(critical.id);
  await expect(page).toHaveURL(new RegExp(`[?&]q=${critical.id}`));
  await expect(titles).toHaveText(["Sort critical"]);
});

test("the pages loaded with Load more come back after a reload", async ({ page, server }) => {
  const titles = Array.from({ length: 57 }, (_, i) => `Kept task ${String(i + 1).padStart(2, "0")}`);
  for (const title of titles) await createTask(server, { title });

  await page.goto("/tasks?sort=created_asc");
  const links = page.locator("tbody").getByRole("link");
  await expect(links).toHaveCount(50);
  await expect(page.getByTestId("task-count")).toHaveText("57 tasks · 50 shown");
  await page.getByRole("button", { name: "Load more" }).click();
  await expect(links).toHaveCount(57);
  await expect(page).toHaveURL(/[?&]pages=2/);
  await expect(page.getByTestId("task-count")).toHaveText("57 tasks");

  await page.reload();
  await expect(links).toHaveCount(57);
  expect(await links.allTextContents()).toEqual(titles);
  await expect(page.getByRole("button", { name: "Load more" })).toHaveCount(0);

  // Another filter is another list: it starts again from its first page.
  await page.getByRole("columnheader", { name: "Created", exact: true }).getByRole("button").click();
  await expect(page).not.toHaveURL(/pages=/);
  await expect(links).toHaveCount(50);
});

test("the password form shows every problem at once, each under its own field, and changes nothing", async ({
  page,
  server,
}) => {
  const sent: string[] = [];
  page.on("request", (r) => {
    if (r.url().includes("auth.changePassword")) sent.push(r.url());
  });
  await page.goto("/account/password");
  const field = (label: string) => page.locator(".field").filter({ has: page.getByLabel(label, { exact: true }) });
  await page.getByLabel("New password", { exact: true }).fill("short");
  await page.getByLabel("New password again", { exact: true }).fill("different");
  await page.getByRole("button", { name: "Change password" }).click();

  await expect(field("Current password")).toContainText("Enter your current password.");
  await expect(field("New password")).toContainText("Password: at least 12 characters");
  await expect(field("New password again")).toContainText("The two new passwords differ.");
  await expect(field("Current password")).not.toContainText("differ");
  await expect(field("New password again")).not.toContainText("12 characters");
  await expect(page.getByLabel("New password", { exact: true })).toHaveAttribute("aria-invalid", "true");

  // Fixing one field leaves the others' problems in place.
  await page.getByLabel("Current password", { exact: true }).fill(server.admin.password);
  await page.getByRole("button", { name: "Change password" }).click();
  await expect(field("Current password")).not.toContainText("Enter your current password.");
  await expect(field("New password")).toContainText("Password: at least 12 characters");
  await expect(field("New password again")).toContainText("The two new passwords differ.");
  await expect(page.getByText("Password changed.")).toHaveCount(0);

  // The form never asked the server to change anything.
  expect(sent).toEqual([]);
});

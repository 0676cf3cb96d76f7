import { expect, test } from "./fixtures.js";

test("an address no page has says so, inside the console, with a way back", async ({ page }) => {
  await page.goto("/does-not-exist");
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Page not found");
  await expect(page.getByText("Something went wrong")).toHaveCount(0);
  await expect(page.getByRole("navigation", { name: "Main" })).toBeVisible();
  await page.getByRole("link", { name: "Go to the task list" }).click();
  await expect(page).toHaveURL(/\/tasks$/);
});

test("after a navigation, focus is on the new page's heading; the breadcrumb names the page", async ({ page }) => {
  await page.goto("/tasks");
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Workers" }).click();
  await expect(page.getByRole("heading", { level: 1 })).toBeFocused();
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Tasks" }).click();
  await expect(page.getByRole("heading", { level: 1 })).toBeFocused();
  await page.getByRole("link", { name: "New task", exact: true }).click();
  await expect(page.getByRole("heading", { level: 1, name: "New task" })).toBeFocused();
  await expect(page.getByRole("navigation", { name: "Breadcrumb" })).toHaveText("Tasks / New task");
});

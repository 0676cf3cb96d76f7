import { expect, test } from "./fixtures.js";

test("an address no page has says so, inside the console, with a way back", async ({ page }) => {
  await page.goto("/does-not-exist");
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Page not found");
  await expect(page.getByText("Something went wrong")).toHaveCount(0);
  await expect(page.getByRole("navigation", { name: "Main" })).toBeVisible();
  await page.getByRole("link", { name: "Go to the task list" }).click();
  await expect(page).toHaveURL(/\/tasks$/);
});

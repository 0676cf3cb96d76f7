import { expect, test } from "./fixtures.js";

test("without a session the console asks to sign in, refuses a wrong password, and returns to the page asked for", async ({
  browser,
  server,
}) => {
  const context = await browser.newContext({ baseURL: server.url });
  try {
    const page = await context.newPage();
    await page.goto("/tasks?priority=high");
    await expect(page).toHaveURL(/\/sign-in\?next=/);
    await expect(page.getByRole("heading", { name: "Sign in" })).toBeVisible();

    await page.getByLabel("Username").fill(server.admin.username);
    await page.getByLabel("Password").fill("not the password at all");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page.getByRole("alert")).not.toBeEmpty();
    await expect(page).toHaveURL(/\/sign-in/);

    await page.getByLabel("Password").fill(server.admin.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page).toHaveURL(/\/tasks\?priority=high$/);
    await expect(page.getByRole("heading", { name: "Tasks", level: 1 })).toBeVisible();
    await expect(page.locator("[data-connection]")).toHaveAttribute("data-connection", "connected");

    await page.getByRole("button", { name: "Sign out" }).click();
    await expect(page).toHaveURL(/\/sign-in/);
    await page.goto("/tasks");
    await expect(page).toHaveURL(/\/sign-in\?next=/);
  } finally {
    await context.close();
  }
});

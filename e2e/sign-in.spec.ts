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

test("a user an admin created must choose their own password before the console shows anything else", async ({
  browser,
  server,
}) => {
  await server.api.users.create.mutate({ username: "nina", role: "operator", password: "chosen-by-the-admin" });
  const context = await browser.newContext({ baseURL: server.url });
  try {
    const page = await context.newPage();
    await page.goto("/tasks/new");
    await page.getByLabel("Username").fill("nina");
    await page.getByLabel("Password").fill("chosen-by-the-admin");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page).toHaveURL(/\/account\/password\?next=%2Ftasks%2Fnew$/);
    await expect(page.getByRole("status").filter({ hasText: "choose your own" })).toBeVisible();

    // Nothing else opens, in the console or at the API.
    await page.goto("/tasks");
    await expect(page).toHaveURL(/\/account\/password\?next=/);
    const list = await page.request.get("/trpc/system.whoami");
    expect(list.status()).toBe(403);
    expect(await list.text()).toContain("choose your own");

    await page.getByLabel("Current password").fill("chosen-by-the-admin");
    await page.getByLabel("New password", { exact: true }).fill("chosen-by-nina-herself");
    await page.getByLabel("New password again").fill("chosen-by-nina-herself");
    await page.getByRole("button", { name: "Change password" }).click();
    await expect(page).toHaveURL(/\/tasks$/);
    await expect(page.getByRole("heading", { name: "Tasks", level: 1 })).toBeVisible();
    await expect(page.locator("[data-connection]")).toHaveAttribute("data-connection", "connected");
    expect((await server.api.users.list.query()).find((u) => u.username === "nina")?.mustChangePassword).toBe(false);
  } finally {
    await context.close();
  }
});

import type { Page } from "@playwright/test";
import { expect, test } from "./fixtures.js";
import { createTask } from "./helpers.js";

async function signInAs(page: Page, username: string, password: string) {
  await page.goto("/sign-in");
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page).toHaveURL(/\/tasks$/);
}

/** A user an admin created signs in the first time: the console makes them choose their own password. */
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

test("a viewer sees no submit, cancel, bulk or admin controls, and the server refuses them anyway", async ({
  browser,
  server,
}) => {
  const password = "viewer-password-123";
  await server.api.users.create.mutate({ username: "vera", role: "viewer", password });
  const task = await createTask(server, { title: "Look, do not touch" });
  const context = await browser.newContext({ baseURL: server.url });
  try {
    const page = await context.newPage();
    await firstSignIn(page, "vera", password, "vera-chose-this-one");
    await expect(page.getByRole("link", { name: "Look, do not touch" })).toBeVisible();
    await expect(page.getByRole("link", { name: "New task" })).toHaveCount(0);
    await expect(page.getByRole("button", { name: /^Cancel/ })).toHaveCount(0);
    await expect(page.getByRole("checkbox", { name: /^Select/ })).toHaveCount(0);
    const nav = page.getByRole("navigation", { name: "Main" });
    await expect(nav.getByRole("link", { name: "Workers" })).toBeVisible();
    await expect(nav.getByRole("link", { name: "Admin" })).toHaveCount(0);

    await page.goto(`/tasks/${task.id}`);
    await expect(page.getByRole("heading", { level: 1 })).toHaveText("Look, do not touch");
    await expect(page.getByRole("button", { name: /^Cancel/ })).toHaveCount(0);

    await page.goto("/workers");
    await expect(page.getByRole("listitem", { name: "Worker reference" })).toBeVisible();
    await expect(page.getByRole("button", { name: /Trip|Reset|Register|Remove|Disable/ })).toHaveCount(0);

    await page.goto("/admin/users");
    await expect(page.getByRole("alert")).toContainText("needs the admin role");

    await page.goto("/audit");
    await expect(page.getByTestId("chain-state")).toBeVisible();
    await expect(page.getByRole("link", { name: /Export chain/ })).toHaveCount(0);

    // Hidden is not the protection: the server says no on its own (from the console's own origin, so it
    // is the role that refuses; a foreign origin is refused before that).
    const fromConsole = { origin: server.url };
    const cancel = await page.request.post("/trpc/tasks.cancel", {
      data: { json: { id: task.id, reason: "trying anyway" } },
      headers: fromConsole,
    });
    expect(cancel.status()).toBe(403);
    expect(await cancel.text()).toContain("needs the operator role");
    const trip = await page.request.post("/trpc/workers.trip", {
      data: { json: { id: (await server.api.workers.list.query())[0]?.id, reason: "trying anyway" } },
      headers: fromConsole,
    });
    expect(trip.status()).toBe(403);
    expect((await page.request.get("/provenance/export.jsonl")).status()).toBe(403);
    expect((await server.api.tasks.get.query({ id: task.id })).state).toBe("queued");
  } finally {
    await context.close();
  }
});

test("an admin creates a user (validated), changes the role and disables them", async ({ page, server }) => {
  await page.goto("/tasks");
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Admin" }).click();
  await expect(page).toHaveURL(/\/admin\/users$/);
  await expect(page.getByRole("row").filter({ hasText: server.admin.username })).toContainText("(you)");

  const form = page.getByRole("form", { name: "Create a user" });
  await form.getByLabel("Username").fill("otto");
  await form.getByLabel("Role").selectOption("operator");
  await form.getByLabel("Initial password").fill("short");
  await form.getByRole("button", { name: "Create user" }).click();
  await expect(form).toContainText("Password: at least 12 characters");
  expect((await server.api.users.list.query()).map((u) => u.username)).not.toContain("otto");

  await form.getByLabel("Initial password").fill("a-long-enough-password");
  await form.getByRole("button", { name: "Create user" }).click();
  await expect(form.getByRole("status")).toHaveText("User otto created.");
  const row = page.getByRole("row").filter({ hasText: "otto" });
  await expect(row.getByLabel("Role of otto")).toHaveValue("operator");

  await form.getByLabel("Username").fill("otto");
  await form.getByLabel("Initial password").fill("a-long-enough-password");
  await form.getByRole("button", { name: "Create user" }).click();
  await expect(form.getByRole("alert")).toContainText("already exists");

  await row.getByLabel("Role of otto").selectOption("viewer");
  await expect
    .poll(async () => (await server.api.users.list.query()).find((u) => u.username === "otto")?.role)
    .toBe("viewer");
  await row.getByRole("button", { name: "Disable otto" }).click();
  await expect(row).toContainText("Disabled");
  expect((await server.api.users.list.query()).find((u) => u.username === "otto")?.disabled).toBe(true);
});

test("a token is shown once with a copy button, works as a bearer token, and stops working once revoked", async ({
  page,
  context,
  server,
}) => {
  await context.grantPermissions(["clipboard-read", "clipboard-write"]);
  await page.goto("/account/tokens");
  await page.getByLabel("Name").fill("ci pipeline");
  await page.getByLabel("Expires after (days)").fill("30");
  await page.getByRole("button", { name: "Create token" }).click();
  const secret = page.getByLabel("New token");
  await expect(secret).not.toHaveValue("");
  const token = await secret.inputValue();
  await page.getByRole("button", { name: "Copy" }).click();
  await expect(page.getByText("Copied to the clipboard.")).toBeVisible();
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(token);

  const me = await fetch(`${server.url}/trpc/auth.me`, { headers: { authorization: `Bearer ${token}` } });
  expect(
    ((await me.json()) as { result: { data: { json: { user: { username: string } } } } }).result.data.json.user
      .username,
  ).toBe(server.admin.username);
  const row = page.getByRole("row").filter({ hasText: "ci pipeline" });
  await expect(row).toContainText("Active");
  await page.getByRole("button", { name: "Done" }).click();
  await expect(page.getByLabel("New token")).toHaveCount(0);

  await row.getByRole("button", { name: "Revoke token ci pipeline" }).click();
  await expect(row).toContainText("Revoked");
  const after = await fetch(`${server.url}/trpc/tasks.list`, { headers: { authorization: `Bearer ${token}` } });
  expect(after.status).toBe(401);
});

test("a user changes their own password and signs in with the new one", async ({ browser, server }) => {
  await server.api.users.create.mutate({ username: "pat", role: "operator", password: "set-by-the-admin" });
  const context = await browser.newContext({ baseURL: server.url });
  try {
    const page = await context.newPage();
    await firstSignIn(page, "pat", "set-by-the-admin", "the-first-password");
    await page.getByRole("link", { name: "Password" }).click();
    await page.getByLabel("Current password").fill("not-the-password");
    await page.getByLabel("New password", { exact: true }).fill("the-second-password");
    await page.getByLabel("New password again").fill("the-second-password-typo");
    await page.getByRole("button", { name: "Change password" }).click();
    // Each problem under its own field, the form's alert pointing at them.
    await expect(page.locator("#pw-repeat-error")).toHaveText("The two new passwords differ.");
    await expect(page.getByRole("alert")).toHaveText("Correct the fields marked above.");
    await page.getByLabel("New password again").fill("the-second-password");
    await page.getByRole("button", { name: "Change password" }).click();
    await expect(page.locator("#pw-current-error")).toContainText("current password is not right");
    await page.getByLabel("Current password").fill("the-first-password");
    await page.getByRole("button", { name: "Change password" }).click();
    await expect(page.getByRole("status").filter({ hasText: "Password changed." })).toBeVisible();

    await page.getByRole("button", { name: "Sign out" }).click();
    await expect(page).toHaveURL(/\/sign-in/);
    await signInAs(page, "pat", "the-second-password");
  } finally {
    await context.close();
  }
});

test("an admin resets a user's password and ends their sessions; the user must choose a new one", async ({
  page,
  browser,
  server,
}) => {
  await server.api.users.create.mutate({ username: "rex", role: "operator", password: "rex-initial-password" });
  const rexContext = await browser.newContext({ baseURL: server.url });
  try {
    const rex = await rexContext.newPage();
    await firstSignIn(rex, "rex", "rex-initial-password", "rex-own-password");

    await page.goto("/admin/users");
    const row = page.getByRole("row").filter({ hasText: "rex" });
    await row.getByRole("button", { name: "End sessions of rex" }).click();
    await expect(row.getByRole("status")).toHaveText("1 session ended");
    await rex.goto("/tasks");
    await expect(rex).toHaveURL(/\/sign-in\?next=/);
    await signInAs(rex, "rex", "rex-own-password");

    await row.getByRole("button", { name: "Reset password of rex" }).click();
    await row.getByRole("button", { name: "Confirm reset of rex's password" }).click();
    const temporary = page.getByLabel("Temporary password for rex");
    await expect(temporary).not.toHaveValue("");
    const password = await temporary.inputValue();
    await expect(row).toContainText("must change password");
    await rex.goto("/tasks");
    await expect(rex).toHaveURL(/\/sign-in\?next=/);
    await firstSignIn(rex, "rex", password, "rex-second-own-password");
    const actions = (await server.api.audit.list.query({ actorId: server.admin.username })).items.map((e) => e.action);
    expect(actions).toEqual(expect.arrayContaining(["user.end_sessions", "user.reset_password"]));
  } finally {
    await rexContext.close();
  }
});

import { expect, test } from "./fixtures.js";

test("the workers page shows the reference worker; an admin trips its breaker and resets it", async ({
  page,
  server,
}) => {
  await page.goto("/workers");
  const card = page.getByRole("listitem", { name: "Worker reference" });
  await expect(card).toBeVisible();
  await expect(card).toContainText("script");
  await expect(card).toContainText("from configuration");
  await expect(card.getByTestId("in-flight")).toHaveText(/^\d+ \/ \d+$/);
  await expect(card.locator(".breaker-badge")).toHaveText("Closed");
  await expect(card.locator(".health-badge")).toHaveText("Healthy", { timeout: 20_000 });
  await expect(card).toContainText("checked");

  await card.getByRole("button", { name: "Trip breaker of reference" }).click();
  // Confirmed in a dialog, with a reason (recorded in the audit trail and the worker's history).
  const confirm = page.getByRole("dialog", { name: "Trip the breaker of reference?" });
  await confirm.getByLabel("Reason").fill("checking the health badge");
  await confirm.getByRole("button", { name: "Trip breaker", exact: true }).click();
  await expect(confirm).toHaveCount(0);
  await expect(card.locator(".breaker-badge")).toHaveText("Tripped by hand");
  const [tripped] = await server.api.workers.list.query();
  expect(tripped?.breaker.state).toBe("tripped");
  await expect(card.getByRole("button", { name: "Trip breaker of reference" })).toHaveCount(0);
  // With its only worker tripped the agency can run nothing: the header's health badge says so.
  const badge = page.locator(".status-pill").first();
  await badge.click();
  await expect(badge).toContainText("Degraded");
  await expect(badge).toContainText("Workers: 0 of 1 usable (reference: breaker tripped)");

  await card.getByRole("button", { name: "Reset breaker of reference" }).click();
  await page
    .getByRole("dialog", { name: "Reset the breaker of reference?" })
    .getByRole("button", { name: "Reset breaker", exact: true })
    .click();
  await expect(card.locator(".breaker-badge")).toHaveText("Closed");
  const [reset] = await server.api.workers.list.query();
  expect(reset?.breaker.state).toBe("closed");
  await badge.click();
  await expect(badge).toContainText("Healthy");
});

test("register checks the form, shows the server's refusal, then registers, edits, disables and removes a worker", async ({
  page,
  server,
}) => {
  await page.goto("/workers");
  await page.getByRole("button", { name: "Register worker" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.getByLabel("Capabilities").fill("Not Valid!");
  await dialog.getByLabel("Max concurrency").fill("0");
  await dialog.getByRole("button", { name: "Register worker" }).click();
  await expect(dialog.locator('[data-field-error="wf-name"]')).toHaveText("Worker name is required");
  await expect(dialog.locator('[data-field-error="wf-capabilities"]')).toContainText("Capability may contain only");
  await expect(dialog.locator('[data-field-error="wf-maxConcurrency"]')).toHaveText(
    "Max concurrency must be at least 1",
  );
  expect(await server.api.workers.list.query()).toHaveLength(1);

  // The allowlist is the server's to enforce; the console shows what it says.
  await dialog.getByLabel("Name").fill("spare");
  await dialog.getByLabel("URL").fill("http://example.com:8080");
  await dialog.getByLabel("Capabilities").fill("script, build");
  await dialog.getByLabel("Max concurrency").fill("3");
  await dialog.getByRole("button", { name: "Register worker" }).click();
  await expect(dialog.getByRole("alert")).toContainText("The server refused:");
  await expect(dialog.getByRole("alert")).toContainText("WORKER_ALLOWED_HOSTS");

  await dialog.getByLabel("URL").fill("http://127.0.0.1:9");
  await dialog.getByRole("button", { name: "Register worker" }).click();
  await expect(dialog).toHaveCount(0);
  const card = page.getByRole("listitem", { name: "Worker spare" });
  await expect(card).toContainText("build");
  await expect(card.getByTestId("in-flight")).toHaveText("0 / 3");
  // Nothing listens on port 9: the health check says so.
  await expect(card.locator(".health-badge")).toHaveText("Down", { timeout: 20_000 });
  await expect(card.locator(".worker-error")).toContainText("health check");

  await card.getByRole("button", { name: "Edit spare" }).click();
  const edit = page.getByRole("dialog");
  await edit.getByLabel("Max concurrency").fill("5");
  await edit.getByRole("button", { name: "Save worker" }).click();
  await expect(edit).toHaveCount(0);
  await expect(card.getByTestId("in-flight")).toHaveText("0 / 5");

  await card.getByRole("button", { name: "Disable spare" }).click();
  await expect(card).toContainText("Disabled");
  const spare = (await server.api.workers.list.query()).find((w) => w.name === "spare");
  expect(spare?.enabled).toBe(false);

  await card.getByRole("button", { name: "Remove spare" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Remove worker" }).click();
  await expect(card).toHaveCount(0);
  expect((await server.api.workers.list.query()).map((w) => w.name)).toEqual(["reference"]);
});

import { expect, test } from "./fixtures.js";
import { NO_WORKER } from "./helpers.js";

test("the audit page lists the task the signed-in admin created; filters live in the URL; the task has its own audit tab", async ({
  page,
  server,
}) => {
  await page.goto("/tasks/new");
  await page.getByLabel("Title", { exact: true }).fill("Audited task");
  await page.getByLabel("Required capability").fill(NO_WORKER);
  await page.getByRole("button", { name: "Submit task" }).click();
  await expect(page).toHaveURL(/\/tasks\/[0-9a-f-]{36}$/);
  const id = page.url().split("/").at(-1) as string;

  await page.getByRole("tab", { name: "Audit" }).click();
  await expect(page.getByRole("tabpanel").locator('[data-audit-action="task.create"]')).toContainText(
    server.admin.username,
  );

  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Audit" }).click();
  await expect(page).toHaveURL(/\/audit$/);
  const filters = page.getByRole("form", { name: "Audit filters" });
  await filters.getByLabel("Action").fill("task.create");
  await filters.getByLabel("Actor", { exact: true }).fill(server.admin.username);
  await filters.getByRole("button", { name: "Apply" }).click();
  await expect(page).toHaveURL(/action=task.create/);
  await expect(page).toHaveURL(new RegExp(`actor=${server.admin.username}`));
  const entry = page.locator('[data-audit-action="task.create"]');
  await expect(entry).toHaveCount(1);
  await expect(entry).toContainText(server.admin.username);
  await expect(entry).toContainText("127.0.0.1");
  await expect(page.locator("[data-audit-action]")).toHaveCount(1);

  // A reload keeps the filter; the resource links to the task.
  await page.reload();
  await expect(filters.getByLabel("Action")).toHaveValue("task.create");
  await entry.getByRole("link").click();
  await expect(page).toHaveURL(new RegExp(`/tasks/${id}$`));

  await page.goto("/audit?action=user.create");
  await expect(page.locator('[data-audit-action="task.create"]')).toHaveCount(0);
  await expect(page.locator('[data-audit-action="user.create"]').first()).toBeVisible();
});

test("the provenance panel verifies the log with the pinned key and offers the export, checkpoint and public key", async ({
  page,
  server,
}) => {
  await server.api.tasks.create.mutate({ title: "Signed decision", capability: NO_WORKER });
  await page.goto("/audit");
  const state = page.getByTestId("chain-state");
  await expect(state).toContainText("Intact");
  const report = await server.api.provenance.verify.query();
  await expect(state).toContainText(`${report.checkpointsVerified} signed checkpoint`);
  await expect(page.getByTestId("provenance-key")).toContainText(
    (await server.api.provenance.publicKey.query()).fingerprint,
  );

  const exportLink = page.getByRole("link", { name: "Export log (JSON Lines)" });
  await expect(exportLink).toHaveAttribute("href", "/provenance/export.jsonl");
  const exported = await page.request.get("/provenance/export.jsonl");
  expect(exported.status()).toBe(200);
  expect((await exported.text()).trim().split("\n")).toHaveLength(report.checked);
  const key = await page.request.get(
    (await page.getByRole("link", { name: "Public key (PEM)" }).getAttribute("href")) ?? "",
  );
  expect(await key.text()).toContain("BEGIN PUBLIC KEY");
  await expect(
    page.getByText("npm run provenance:verify -- --file log.jsonl --checkpoint checkpoint.txt --public-key key.pem"),
  ).toBeVisible();
});

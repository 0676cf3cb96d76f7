import { readFileSync } from "node:fs";
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
  // The action is chosen from the list of every action the server writes.
  const actionSelect = filters.getByLabel("Action");
  await expect(actionSelect.locator("option")).toContainText(["Any", "auth.sign_in", "task.create", "worker.update"]);
  await actionSelect.selectOption("task.create");
  await filters.getByLabel("Actor", { exact: true }).fill(server.admin.username);
  await filters.getByRole("button", { name: "Apply" }).click();
  await expect(page).toHaveURL(/action=task.create/);
  await expect(page).toHaveURL(new RegExp(`actor=${server.admin.username}`));
  const entry = page.locator('[data-audit-action="task.create"]');
  await expect(entry).toHaveCount(1);
  await expect(entry).toContainText(server.admin.username);
  await expect(entry).toContainText("127.0.0.1");
  // The resource is named by the task's title, and the time is to the second.
  await expect(entry.getByRole("link", { name: "Audited task" })).toBeVisible();
  await expect(entry.locator("time")).toHaveText(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
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

test("a long reason opens in full; times switch to UTC and stay so on the task's audit tab; the CSV holds what the page shows", async ({
  page,
  server,
}) => {
  const task = await server.api.tasks.create.mutate({ title: "Canceled, with a long reason", capability: NO_WORKER });
  const reason = `Stopped for the quarterly review: ${"the budget owner asked to hold every queued task until Monday; ".repeat(3)}end of reason.`;
  await server.api.tasks.cancel.mutate({ id: task.id, reason });
  const listed = (await server.api.audit.list.query({ action: "task.cancel", resourceId: task.id })).items[0];
  if (!listed) throw new Error("the cancel was not audited");

  await page.goto("/audit?action=task.cancel");
  const filters = page.getByRole("form", { name: "Audit filters" });
  await expect(filters.getByLabel("Action")).toHaveValue("task.cancel");
  const row = page.locator('[data-audit-action="task.cancel"]');
  await expect(row).toHaveCount(1);
  await expect(row.getByRole("link", { name: "Canceled, with a long reason" })).toBeVisible();
  await expect(row).not.toContainText("end of reason.");

  // The whole reason, from the keyboard.
  const more = row.getByRole("button", { name: "Show all" });
  await expect(more).toHaveAttribute("aria-expanded", "false");
  await more.focus();
  await page.keyboard.press("Enter");
  await expect(row.getByRole("button", { name: "Show less" })).toHaveAttribute("aria-expanded", "true");
  await expect(row).toContainText(reason);

  // Local/UTC: the time in UTC to the second, remembered across a reload and on the task's own audit tab.
  const utc = listed.createdAt.toISOString().slice(0, 19).replace("T", " ");
  await page.getByRole("group", { name: "Times in" }).getByRole("button", { name: "UTC" }).click();
  await expect(row.locator("time")).toHaveText(`${utc} UTC`);
  await page.reload();
  await expect(page.getByRole("button", { name: "UTC" })).toHaveAttribute("aria-pressed", "true");
  await expect(row.locator("time")).toHaveText(`${utc} UTC`);
  await page.goto(`/tasks/${task.id}?tab=audit`);
  await expect(page.getByRole("tabpanel").locator('[data-audit-action="task.cancel"] time')).toHaveText(`${utc} UTC`);
  await page.getByRole("tabpanel").getByRole("button", { name: "Local" }).click();
  await expect(page.getByRole("tabpanel").locator('[data-audit-action="task.cancel"] time')).not.toContainText("UTC");

  // Download CSV: the filtered entries, with the full reason and the title, times in UTC.
  await page.goto("/audit?action=task.cancel");
  const downloading = page.waitForEvent("download");
  await page.getByRole("link", { name: "Download CSV" }).click();
  const download = await downloading;
  expect(download.suggestedFilename()).toMatch(/^agency-audit-\d{8}T\d{6}Z\.csv$/);
  const file = await download.path();
  const csv = readFileSync(file, "utf8");
  const lines = csv.split("\r\n").filter(Boolean);
  expect(lines[0]).toBe(
    "id,time_utc,actor_kind,actor_id,actor,action,resource_type,resource_id,resource_name,before,after,client_address,user_agent",
  );
  expect(lines).toHaveLength(2);
  expect(lines[1]).toContain(`${listed.id},${listed.createdAt.toISOString()},`);
  expect(lines[1]).toContain(",task.cancel,task,");
  expect(lines[1]).toContain('"Canceled, with a long reason"');
  expect(lines[1]).toContain(reason);
});

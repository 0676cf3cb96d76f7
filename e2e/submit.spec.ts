import { expect, test } from "./fixtures.js";
import { NO_WORKER, taskRow } from "./helpers.js";

test("a task submitted through the form is in the list, and its detail page shows the spec and a created event", async ({
  page,
  server,
}) => {
  await page.goto("/tasks/new");
  await page.getByLabel("Title", { exact: true }).fill("Write the release notes");
  await page.getByLabel("Description", { exact: true }).fill("Summarise every change since 0.1 for operators.");
  await page.getByLabel("Priority", { exact: true }).selectOption("high");
  await page.getByLabel("Risk tier", { exact: true }).selectOption("1");
  await page.getByLabel("Mode", { exact: true }).selectOption("chore");
  await page.getByLabel("Required capability").fill(NO_WORKER);
  await page.getByRole("button", { name: "Add criterion" }).click();
  await page.getByLabel("Criterion 1", { exact: true }).fill("NOTES.md exists");
  await page.getByLabel("Check for criterion 1").selectOption("command");
  await page.getByLabel("Command", { exact: true }).fill("test -f NOTES.md");
  await page.getByLabel("Include globs").fill("docs/**\nNOTES.md");
  await page.getByLabel("Exclude globs").fill("secrets/**");
  await page.getByLabel("Max files").fill("3");
  await page.getByLabel("Max lines changed").fill("200");
  await page.getByLabel("Max duration (seconds)").fill("600");
  await page.getByLabel("Script", { exact: true }).fill("echo notes > NOTES.md");
  await page.getByLabel("Input (JSON object)").fill('{ "lang": "en" }');
  // Ctrl+Enter in a multi-line box submits the form, as the button does.
  await page.getByLabel("Script", { exact: true }).press("Control+Enter");

  await expect(page).toHaveURL(/\/tasks\/[0-9a-f-]{36}$/);
  const id = page.url().split("/").at(-1) as string;
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Write the release notes");
  const overview = page.getByRole("tabpanel");
  await expect(overview).toContainText("Summarise every change since 0.1 for operators.");
  await expect(overview).toContainText(NO_WORKER);
  await expect(overview).toContainText("chore");
  await expect(overview).toContainText("At most 3 files, 200 changed lines, 600 s");
  await expect(overview).toContainText("NOTES.md exists");
  await expect(overview).toContainText("test -f NOTES.md");
  await expect(overview).toContainText("docs/**");
  await expect(overview).toContainText("secrets/**");
  const input = JSON.parse((await page.getByTestId("task-input").textContent()) ?? "") as unknown;
  expect(input).toEqual({ lang: "en", script: "echo notes > NOTES.md" });

  // The server holds exactly what the form showed.
  const stored = await server.api.tasks.get.query({ id });
  await page.getByRole("tab", { name: /Timeline/ }).click();
  const created = page.locator('[data-event-type="created"]');
  await expect(created).toHaveCount(1);
  await expect(created).toContainText("Created");
  await expect(created).toContainText("Queued");
  await expect(created).toContainText(`by ${stored.createdBy}`);
  expect(stored.spec).toMatchObject({
    title: "Write the release notes",
    priority: "high",
    riskTier: 1,
    mode: "chore",
    capability: NO_WORKER,
    acceptanceCriteria: [{ text: "NOTES.md exists", check: { kind: "command", command: "test -f NOTES.md" } }],
    scope: { include: ["docs/**", "NOTES.md"], exclude: ["secrets/**"] },
    budget: { maxFiles: 3, maxLinesChanged: 200, maxDurationSec: 600 },
  });

  await page.getByRole("link", { name: "Tasks", exact: true }).first().click();
  await expect(page).toHaveURL(/\/tasks$/);
  const row = taskRow(page, "Write the release notes");
  await expect(row).toHaveCount(1);
  await expect(row).toContainText("high");
  await expect(row).toContainText(NO_WORKER);
  await expect(row).toContainText(stored.createdBy);
});

test("an invalid form shows each error next to its field and creates nothing", async ({ page, server }) => {
  await page.goto("/tasks/new");
  await page.getByLabel("Required capability").fill("Bad Capability!");
  await page.getByLabel("Input (JSON object)").fill("{ not json");
  await page.getByLabel("Max files").fill("0");
  await page.getByRole("button", { name: "Submit task" }).click();

  await expect(page.locator('[data-field-error="f-title"]')).toHaveText("Title is required");
  await expect(page.locator('[data-field-error="f-capability"]')).toContainText(
    "Capability may contain only a-z, 0-9, '.', '_' and '-'",
  );
  await expect(page.locator('[data-field-error="f-input"]')).toContainText("Worker input is not valid JSON");
  await expect(page.locator('[data-field-error="f-max-files"]')).toHaveText("Max files must be at least 1");
  await expect(page.getByRole("alert").filter({ hasText: "The task was not submitted" })).toContainText("4 problems");
  await expect(page.getByLabel("Title", { exact: true })).toBeFocused();
  await expect(page.getByLabel("Title", { exact: true })).toHaveAttribute("aria-invalid", "true");
  await expect(page).toHaveURL(/\/tasks\/new$/);

  // An empty glob line is ignored, but a criterion without text is an error of its own row.
  await page.getByRole("button", { name: "Add criterion" }).click();
  await page.getByRole("button", { name: "Submit task" }).click();
  await expect(page.locator('[data-field-error^="f-criterion-"]').first()).toHaveText("Criterion text is required");

  expect((await server.api.tasks.list.query({})).items).toHaveLength(0);
  await page.goto("/tasks");
  await expect(page.getByText("No tasks yet.")).toBeVisible();

  // A task for the reference worker's script capability without a script could only fail.
  await page.goto("/tasks/new");
  await page.getByLabel("Title", { exact: true }).fill("Scriptless");
  await page.getByRole("button", { name: "Submit task" }).click();
  await expect(page.locator('[data-field-error="f-script"]')).toContainText("A script task needs a script");
  expect((await server.api.tasks.list.query({})).items).toHaveLength(0);

  // Fixing every field submits the task.
  await page.goto("/tasks/new");
  await page.getByLabel("Title", { exact: true }).fill("Now valid");
  await page.getByLabel("Required capability").fill(NO_WORKER);
  await page.getByLabel("Max files").fill("1");
  await page.getByRole("button", { name: "Submit task" }).click();
  await expect(page).toHaveURL(/\/tasks\/[0-9a-f-]{36}$/);
  expect((await server.api.tasks.list.query({})).items.map((t) => t.title)).toEqual(["Now valid"]);
});

test("the form shows the chosen tier's tries, idle timeout, deadline and approval, and the deadline Max duration sets", async ({
  page,
}) => {
  await page.goto("/tasks/new");
  const tries = page.getByTestId("tier-tries");
  const idle = page.getByTestId("tier-idle-timeout");
  const deadline = page.getByTestId("tier-deadline");
  // The default policy table (src/server/config.ts): the form starts at tier 2.
  await expect(page.getByLabel("Risk tier", { exact: true })).toHaveValue("2");
  await expect(tries).toHaveText("3 per attempt, 2 attempts");
  await expect(idle).toHaveText("1 min without a word from the worker");
  await expect(deadline).toHaveText("30 min (tier 2)");
  await expect(page.getByTestId("tier-timeouts")).toContainText("Idle timeout per try");
  // The default APPROVAL_POLICY: tier 1 waits for an operator other than its creator; tiers 2 and 3 do not.
  const approval = page.getByTestId("tier-approval");
  await expect(approval).toHaveText("Not needed: the council's acceptance is final");

  await page.getByLabel("Risk tier", { exact: true }).selectOption("1");
  await expect(tries).toHaveText("5 per attempt, 3 attempts");
  await expect(idle).toHaveText("2 min without a word from the worker");
  await expect(deadline).toHaveText("1 h (tier 1)");
  await expect(approval).toHaveText("Needed: an operator other than the task's creator approves the accepted result");

  await page.getByLabel("Risk tier", { exact: true }).selectOption("3");
  await expect(tries).toHaveText("2 per attempt, 1 attempt");
  await expect(idle).toHaveText("30 s without a word from the worker");
  await expect(deadline).toHaveText("15 min (tier 3)");
  await expect(approval).toHaveText("Not needed: the council's acceptance is final");

  // A Max duration is the deadline instead of the tier's; clearing it brings the tier's back.
  await page.getByLabel("Max duration (seconds)").fill("90");
  await expect(deadline).toHaveText("90 s (Max duration)");
  await page.getByLabel("Max duration (seconds)").fill("");
  await expect(deadline).toHaveText("15 min (tier 3)");
});

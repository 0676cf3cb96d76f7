import { expect, test } from "./fixtures.js";
import { createTask, NO_WORKER } from "./helpers.js";

test("'Rerun with changes' opens the form filled with a finished task's spec; the rerun and the original link to each other", async ({
  page,
  server,
}) => {
  const original = await createTask(server, {
    title: "Count the lines",
    description: "How long is the log?",
    priority: "high",
    riskTier: 3,
    acceptanceCriteria: [{ text: "count.txt exists", check: { kind: "command", command: "test -f count.txt" } }],
    budget: { maxFiles: 3 },
    input: { script: "wc -l < /dev/null > count.txt", lang: "en" },
  });
  const queued = await createTask(server, { title: "Still waiting" });

  // A task that has not finished offers no rerun.
  await page.goto(`/tasks/${queued.id}`);
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Still waiting");
  await expect(page.getByRole("button", { name: /^Cancel/ })).toBeVisible();
  await expect(page.getByRole("link", { name: /Rerun with changes/ })).toHaveCount(0);

  await server.api.tasks.cancel.mutate({ id: original.id, reason: "wrong count" });
  await page.goto(`/tasks/${original.id}`);
  await page.getByRole("link", { name: /Rerun with changes/ }).click();
  await expect(page).toHaveURL(new RegExp(`/tasks/new\\?rerunOf=${original.id}$`));
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Rerun with changes");
  await expect(page.getByTestId("rerun-of")).toContainText("Rerun of Count the lines (canceled)");

  // Every field starts from the original's spec.
  await expect(page.getByLabel("Title", { exact: true })).toHaveValue("Count the lines");
  await expect(page.getByLabel("Description", { exact: true })).toHaveValue("How long is the log?");
  await expect(page.getByLabel("Priority", { exact: true })).toHaveValue("high");
  await expect(page.getByLabel("Risk tier", { exact: true })).toHaveValue("3");
  await expect(page.getByLabel("Required capability")).toHaveValue(NO_WORKER);
  await expect(page.getByLabel("Criterion 1", { exact: true })).toHaveValue("count.txt exists");
  await expect(page.getByLabel("Command", { exact: true })).toHaveValue("test -f count.txt");
  await expect(page.getByLabel("Max files")).toHaveValue("3");
  await expect(page.getByLabel("Script", { exact: true })).toHaveValue("wc -l < /dev/null > count.txt");
  await expect(page.getByLabel("Input (JSON object)")).toHaveValue(/"lang": "en"/);

  // The form checks a rerun as it checks a new task.
  await page.getByLabel("Title", { exact: true }).fill("");
  await page.getByRole("button", { name: "Submit rerun" }).click();
  await expect(page.getByText("Title is required")).toBeVisible();

  await page.getByLabel("Title", { exact: true }).fill("Count the lines, again");
  await page.getByLabel("Script", { exact: true }).fill("printf '0\\n' > count.txt");
  await page.getByRole("button", { name: "Submit rerun" }).click();

  await expect(page).toHaveURL(/\/tasks\/[0-9a-f-]{36}$/);
  const rerunId = page.url().split("/").at(-1) as string;
  expect(rerunId).not.toBe(original.id);
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Count the lines, again");
  const link = page.getByTestId("rerun-of");
  await expect(link).toContainText("Rerun of");
  await expect(link.getByRole("link", { name: "Count the lines" })).toBeVisible();
  const stored = await server.api.tasks.get.query({ id: rerunId });
  expect(stored.spec).toMatchObject({
    title: "Count the lines, again",
    description: "How long is the log?",
    priority: "high",
    riskTier: 3,
    budget: { maxFiles: 3 },
    input: { script: "printf '0\\n' > count.txt", lang: "en" },
  });
  expect(stored.rerunOf?.id).toBe(original.id);

  // Back on the original, its reruns are listed.
  await link.getByRole("link", { name: "Count the lines" }).click();
  await expect(page).toHaveURL(new RegExp(`/tasks/${original.id}$`));
  const reruns = page.getByTestId("reruns");
  await expect(reruns).toContainText("Reruns");
  await expect(reruns.getByRole("link", { name: "Count the lines, again" })).toHaveAttribute(
    "href",
    `/tasks/${rerunId}`,
  );
});

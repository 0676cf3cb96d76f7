import { expect, test } from "./fixtures.js";
import { createTask } from "./helpers.js";

test("an admin overrides Changes requested to Accepted with a justification; the tab shows who and why", async ({
  page,
  server,
}) => {
  // The council's automatic re-dispatches run first, on a machine that may be busy.
  test.setTimeout(180_000);
  const task = await createTask(server, {
    title: "Leaves a TODO to override",
    capability: "script",
    input: { script: "printf 'def run():\\n    # TODO: implement\\n    pass\\n' > run.py" },
  });
  await expect
    .poll(
      async () => {
        const t = await server.api.tasks.get.query({ id: task.id });
        return t.state === "changes_requested" && t.attempts.every((a) => a.finishedAt !== null);
      },
      { timeout: 120_000 },
    )
    .toBe(true);
  await page.goto(`/tasks/${task.id}`);
  await expect(page.locator(".task-facts")).toContainText("Changes requested");

  await page.getByRole("tab", { name: "Verdict" }).click();
  await page.getByRole("button", { name: "Override verdict" }).click();
  const dialog = page.getByRole("dialog", { name: "Override verdict" });
  await dialog.getByLabel("New verdict").selectOption({ label: "Accepted" });
  // Too short: refused before it reaches the server, and nothing changes.
  await dialog.getByLabel("Justification").fill("ok");
  await dialog.getByRole("button", { name: "Override", exact: true }).click();
  await expect(dialog.getByRole("alert")).toContainText("at least 10 characters");

  const justification = "The TODO sits in a template the release process fills in.";
  await dialog.getByLabel("Justification").fill(justification);
  await dialog.getByRole("button", { name: "Override", exact: true }).click();
  await expect(dialog).toBeHidden();

  await expect(page.locator(".task-facts")).toContainText("Accepted");
  const notice = page.getByTestId("verdict-override");
  await expect(notice).toContainText("Overridden from Changes requested to Accepted");
  await expect(notice).toContainText(justification);
  await expect(notice).toContainText(`by ${server.admin.username}`);

  const stored = await server.api.tasks.get.query({ id: task.id });
  expect(stored.state).toBe("accepted");
  expect(stored.verdict?.override).toMatchObject({ to: "accepted", justification });
});

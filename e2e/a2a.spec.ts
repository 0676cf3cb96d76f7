import { type RunningAgent, startA2AAgent } from "../test/helpers/a2a-agent.js";
import { expect, test } from "./fixtures.js";

let agent: RunningAgent;

test.beforeAll(async () => {
  agent = await startA2AAgent({ streaming: true, name: "Greeter agent", skills: ["greet"] });
});
test.afterAll(async () => {
  await agent?.stop();
});

test("an admin registers an A2A agent by its card; an operator answers its question on the task page", async ({
  page,
  server,
}) => {
  await page.goto("/workers");
  await page.getByRole("button", { name: "Register worker" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.getByLabel("Name").fill("greeter");
  await dialog.getByLabel("A2A agent (Agent2Agent, by its Agent Card)").check();
  await dialog.getByLabel("Agent Card URL").fill(agent.cardUrl);
  // No capability: the card's skills are taken.
  await dialog.getByLabel("Capabilities").fill("");
  await dialog.getByRole("button", { name: "Register worker" }).click();
  await expect(dialog).toHaveCount(0);
  const card = page.getByRole("listitem", { name: "Worker greeter" });
  await expect(card.locator('[data-protocol="a2a"]')).toHaveText("A2A");
  await expect(card.getByTestId("agent-card")).toContainText("Greeter agent");
  await expect(card.getByTestId("agent-card")).toContainText("streams");
  await expect(card.getByTestId("agent-card")).toContainText("capabilities from its skills");
  await expect(card).toContainText("greet");

  const task = await server.api.tasks.create.mutate({
    title: "Greet the team",
    mode: "chore",
    capability: "greet",
    input: { a2a: { act: "ask", question: "Which greeting should I use?" } },
  });
  await page.goto(`/tasks/${task.id}`);
  const question = page.getByTestId("agent-question");
  await expect(question).toContainText("The agent needs input", { timeout: 30_000 });
  await expect(question).toContainText("Which greeting should I use?");
  await question.getByRole("button", { name: "Send answer" }).click();
  await expect(question.locator("#agent-answer-error")).toHaveText("The answer must not be empty");
  await question.getByLabel("Your answer").fill("Good morning, team");
  await question.getByRole("button", { name: "Send answer" }).click();
  await expect(page.getByTestId("agent-question")).toHaveCount(0, { timeout: 30_000 });
  await expect(page.locator(".task-facts")).toContainText("Accepted", { timeout: 30_000 });
  const done = await server.api.tasks.get.query({ id: task.id });
  expect(done.attempts[0]?.artifacts[0]?.content).toBe("Good morning, team\n");
});

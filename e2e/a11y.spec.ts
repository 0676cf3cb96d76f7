import { AxeBuilder } from "@axe-core/playwright";
import type { Page } from "@playwright/test";
import { expect, test } from "./fixtures.js";
import { createTask } from "./helpers.js";

// Every page of the console against WCAG 2.1 A and AA (axe-core), with real data on it: a task that ran on
// the reference worker and was accepted (green badges), one waiting in the queue, a chat session. Each page
// must also render under the served Content-Security-Policy (no inline style or script) without a violation.

const WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];

// Starting the server, running a task and analysing eleven pages takes minutes on a loaded machine.
test.describe.configure({ timeout: 600_000 });

/** Records CSP violations from the first byte on (an init script runs before the page's own). */
async function watchCsp(page: Page): Promise<string[]> {
  const seen: string[] = [];
  await page.exposeFunction("__reportCspViolation", (v: string) => seen.push(v));
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      (window as unknown as { __reportCspViolation(v: string): void }).__reportCspViolation(
        `${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`,
      );
    });
  });
  page.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy/i.test(m.text())) seen.push(m.text());
  });
  return seen;
}

async function expectNoViolations(page: Page, what: string) {
  const results = await new AxeBuilder({ page }).withTags(WCAG_21_AA).analyze();
  const found = results.violations.map(
    (v) =>
      `${v.id} (${v.impact}): ${v.help}\n${v.nodes
        .slice(0, 5)
        .map((n) => `    ${n.target.join(" ")}: ${n.failureSummary?.split("\n").slice(1, 2).join("").trim()}`)
        .join("\n")}`,
  );
  expect(found, `${what}: axe WCAG 2.1 AA violations`).toEqual([]);
}

test("every page of the console passes axe (WCAG 2.1 AA) and renders under the CSP", async ({ page, server }) => {
  const accepted = await createTask(server, {
    title: "Writes hello",
    capability: "script",
    input: { script: "echo hello > hello.txt" },
  });
  await createTask(server, { title: "Waits in the queue" });
  // Tier 1: the council's acceptance waits for a person (the default APPROVAL_POLICY).
  const awaiting = await createTask(server, {
    title: "Waits for approval",
    capability: "script",
    riskTier: 1,
    input: { script: "echo approve me > approval.txt" },
  });
  const session = await server.api.chat.sessions.create.mutate({ title: "Incident review" });
  await server.api.chat.send.mutate({
    sessionId: session.id,
    content: "The queue is draining since the restart.",
    clientId: "a11y-message-1",
  });
  await expect
    .poll(async () => (await server.api.tasks.get.query({ id: accepted.id })).state, { timeout: 120_000 })
    .toBe("accepted");
  await expect
    .poll(async () => (await server.api.tasks.get.query({ id: awaiting.id })).state, { timeout: 120_000 })
    .toBe("awaiting_approval");

  const [reference] = await server.api.workers.list.query();
  // A webhook to a closed port: its test delivery stays in the log with the connection error.
  const webhook = await server.api.webhooks.create.mutate({
    name: "a11y hook",
    url: "http://127.0.0.1:9/hook",
    events: ["task.failed"],
  });
  await server.api.webhooks.sendTest.mutate({ id: webhook.endpoint.id });
  const csp = await watchCsp(page);
  const pages: [string, string, () => Promise<void>][] = [
    ["tasks list", "/tasks", () => expect(page.getByRole("link", { name: "Writes hello", exact: true })).toBeVisible()],
    ["task detail", `/tasks/${accepted.id}`, () => expect(page.locator(".task-facts")).toContainText("Accepted")],
    ["submit", "/tasks/new", () => expect(page.getByRole("heading", { level: 1 })).toBeVisible()],
    ["workers", "/workers", () => expect(page.getByRole("listitem", { name: "Worker reference" })).toBeVisible()],
    [
      "worker detail",
      `/workers/${reference?.id}`,
      () => expect(page.locator("table.worker-attempts").getByRole("link", { name: "Writes hello" })).toBeVisible(),
    ],
    ["audit", "/audit", () => expect(page.getByRole("heading", { name: "Audit trail" })).toBeVisible()],
    ["live metrics", "/live-metrics", () => expect(page.getByRole("heading", { name: "Metrics" })).toBeVisible()],
    ["approvals", "/approvals", () => expect(page.getByTestId("approval-review")).toContainText("approval.txt")],
    [
      "task awaiting approval",
      `/tasks/${awaiting.id}`,
      () => expect(page.getByTestId("approval-refusal")).toContainText("Four eyes"),
    ],
    [
      "chat",
      `/chat/${session.id}`,
      () => expect(page.getByText("The queue is draining since the restart.")).toBeVisible(),
    ],
    ["admin users", "/admin/users", () => expect(page.getByRole("heading", { name: "Users" })).toBeVisible()],
    ["webhooks", "/admin/webhooks", () => expect(page.locator('tr[data-webhook="a11y hook"]')).toBeVisible()],
    [
      "webhook deliveries",
      `/admin/webhooks/${webhook.endpoint.id}`,
      () => expect(page.locator("tr[data-delivery]").first()).toBeVisible(),
    ],
    [
      "account tokens",
      "/account/tokens",
      () => expect(page.getByRole("heading", { name: "API tokens" })).toBeVisible(),
    ],
    [
      "account password",
      "/account/password",
      () => expect(page.getByRole("heading", { name: "Change password" })).toBeVisible(),
    ],
  ];
  for (const [what, path, rendered] of pages) {
    await page.goto(path);
    await rendered();
    await expect(page.locator("[data-connection]")).toHaveAttribute("data-connection", "connected");
    await expectNoViolations(page, what);
  }

  // The task page's other tabs.
  await page.goto(`/tasks/${accepted.id}`);
  await expect(page.locator(".task-facts")).toContainText("Accepted");
  for (const tab of await page.getByRole("tab").allTextContents()) {
    await page.getByRole("tab", { name: tab }).click();
    await expect(page.getByRole("tab", { name: tab })).toHaveAttribute("aria-selected", "true");
    await expect(page.getByRole("tabpanel")).toBeVisible();
    await expectNoViolations(page, `task detail, ${tab} tab`);
  }
  expect(csp, "CSP violations while rendering the console").toEqual([]);
});

test("the sign-in page passes axe (WCAG 2.1 AA)", async ({ browser, server }) => {
  const context = await browser.newContext({ baseURL: server.url });
  try {
    const page = await context.newPage();
    const csp = await watchCsp(page);
    await page.goto("/sign-in");
    await expect(page.getByRole("heading", { name: "Sign in" })).toBeVisible();
    await expectNoViolations(page, "sign-in");
    // An error shown on the page must pass too.
    await page.getByLabel("Username").fill(server.admin.username);
    await page.getByLabel("Password").fill("not the password at all");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page.getByRole("alert")).not.toBeEmpty();
    await expectNoViolations(page, "sign-in with an error");
    expect(csp).toEqual([]);
  } finally {
    await context.close();
  }
});

test("the task filter's checkboxes are targets of at least 24 x 24 px", async ({ page }) => {
  await page.goto("/tasks");
  const boxes = page.locator(".check-group input[type=checkbox]");
  await expect(boxes.first()).toBeVisible();
  const sizes = await boxes.evaluateAll((els) =>
    els.map((el) => {
      const r = el.getBoundingClientRect();
      return { width: r.width, height: r.height };
    }),
  );
  expect(sizes.length).toBeGreaterThan(10);
  for (const s of sizes) {
    expect(s.width).toBeGreaterThanOrEqual(24);
    expect(s.height).toBeGreaterThanOrEqual(24);
  }
  const target = await new AxeBuilder({ page }).withRules(["target-size"]).analyze();
  expect(target.violations.map((v) => v.nodes.map((n) => n.target.join(" ")))).toEqual([]);
});

test("a filter the server refuses is listed as such, and the page with it passes axe", async ({ page }) => {
  // The task list no longer loads the filter's schema: the server's refusal names each problem.
  await page.goto("/tasks?from=2026-02-02&to=2026-01-01");
  const alert = page.getByRole("alert").filter({ hasText: "This filter cannot be used:" });
  await expect(alert).toContainText("Created from must not be after created to");
  await expect(page.getByText("Could not load tasks:")).toHaveCount(0);
  await expectNoViolations(page, "tasks list with a refused filter");
  await page.getByRole("button", { name: "Clear filters" }).first().click();
  await expect(alert).toHaveCount(0);
});

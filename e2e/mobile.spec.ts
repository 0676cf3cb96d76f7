import type { Page } from "@playwright/test";
import { expect, test } from "./fixtures.js";
import { createTask, taskRow } from "./helpers.js";

// Issue #14: every page of the console at a phone's size (390 x 844, portrait). The page itself never scrolls
// sideways (wide tables and the task's tabs scroll inside their own box), its heading is on screen, and the
// navigation and sign-out are reachable through the Menu button. The task list starts near the top with its
// filters in a drawer. One server and one set of data for every page: starting a server per page would take
// minutes on a loaded machine.

const WIDTH = 390;
const HEIGHT = 844;
test.use({ viewport: { width: WIDTH, height: HEIGHT } });
test.describe.configure({ timeout: 600_000 });

const pageWidth = (page: Page) => page.evaluate(() => document.documentElement.scrollWidth);

/** No sideways scrolling of the page, now and once what is loading has loaded (polled, not slept). */
async function expectNoPageOverflow(page: Page, what: string) {
  await expect
    .poll(() => pageWidth(page), { message: `${what}: the page is wider than the screen` })
    .toBeLessThanOrEqual(WIDTH);
}

/** The page's h1 is on screen: inside the viewport's width, within the first screen, and not clipped to nothing. */
async function expectHeadingOnScreen(page: Page, name: string | RegExp) {
  const h1 = page.getByRole("heading", { level: 1, name });
  await expect(h1).toBeVisible();
  const box = await h1.boundingBox();
  expect(box, `the heading ${String(name)} has no box`).not.toBeNull();
  if (!box) return;
  expect(box.width).toBeGreaterThan(20);
  expect(box.x).toBeGreaterThanOrEqual(0);
  expect(box.x + box.width).toBeLessThanOrEqual(WIDTH);
  expect(box.y).toBeLessThan(HEIGHT);
}

/** The Menu button opens the navigation and the user menu (Sign out among them) without widening the page. */
async function expectMenuReachable(page: Page, what: string) {
  const menu = page.getByRole("button", { name: "Menu" });
  const nav = page.getByRole("navigation", { name: "Main" });
  await expect(menu).toHaveAttribute("aria-expanded", "false");
  await expect(nav).toBeHidden();
  await expect(page.getByRole("button", { name: "Sign out" })).toBeHidden();
  await menu.click();
  await expect(menu).toHaveAttribute("aria-expanded", "true");
  for (const name of ["Tasks", "Workers", "Metrics", "Chat", "Audit", "Admin"]) {
    await expect(nav.getByRole("link", { name, exact: true })).toBeInViewport();
  }
  await expect(page.getByRole("button", { name: "Sign out" })).toBeInViewport();
  await expect(page.getByRole("link", { name: "Tokens", exact: true })).toBeInViewport();
  await expectNoPageOverflow(page, `${what} with the menu open`);
  // Escape closes it and hands focus back to the button.
  await page.keyboard.press("Escape");
  await expect(menu).toHaveAttribute("aria-expanded", "false");
  await expect(menu).toBeFocused();
  await expect(nav).toBeHidden();
}

test("every page fits a 390 x 844 screen: no sideways page scroll, heading on screen, menu and sign-out reachable", async ({
  page,
  browser,
  server,
}) => {
  const done = await createTask(server, {
    title: "Writes hello",
    capability: "script",
    input: { script: "echo hello; echo 'hello again' >&2; echo hi > hello.txt" },
  });
  for (const n of [1, 2, 3]) await createTask(server, { title: `Waits in the queue ${n}` });
  const awaiting = await createTask(server, {
    title: "Waits for approval",
    capability: "script",
    riskTier: 1,
    input: { script: "printf 'a fairly long line of output to review on a narrow screen\n' > approval.txt" },
  });
  const session = await server.api.chat.sessions.create.mutate({ title: "Incident review" });
  await server.api.chat.send.mutate({
    sessionId: session.id,
    content: "The queue is draining since the restart.",
    clientId: "mobile-message-1",
  });
  await expect
    .poll(async () => (await server.api.tasks.get.query({ id: done.id })).state, { timeout: 120_000 })
    .toBe("accepted");
  const rationale = (await server.api.tasks.get.query({ id: done.id })).verdict?.rationale ?? "";
  expect(rationale.length).toBeGreaterThan(20);

  await test.step("task list: first row on the first screen, filters in a drawer", async () => {
    await page.goto("/tasks");
    await expect(taskRow(page, "Writes hello")).toBeVisible();
    await expectHeadingOnScreen(page, "Tasks");
    await expectNoPageOverflow(page, "task list");
    const firstRow = page.locator("tbody tr").first();
    const top = (await firstRow.boundingBox())?.y ?? Number.POSITIVE_INFINITY;
    expect(top, "the first task row starts below the first screen").toBeLessThan(HEIGHT);
    // The filter column is folded away: its fields are not on the page until the drawer opens.
    await expect(page.getByLabel("Search title, description or task id")).toBeHidden();

    const filters = page.getByRole("button", { name: "Filters", exact: true });
    await expect(filters).toHaveAttribute("aria-expanded", "false");
    await filters.click();
    const drawer = page.getByRole("dialog", { name: "Filters" });
    await expect(drawer).toBeVisible();
    await expect(filters).toHaveAttribute("aria-expanded", "true");
    // Focus moved into the drawer; the drawer fits the screen.
    await expect.poll(() => drawer.evaluate((el) => el.contains(document.activeElement))).toBe(true);
    const box = await drawer.boundingBox();
    expect(box && box.x >= 0 && box.x + box.width <= WIDTH).toBe(true);
    // The box follows the address (the filter lives there), so it is clicked and then awaited, not check()ed.
    const queued = drawer.getByRole("group", { name: "State" }).getByLabel("Queued");
    await queued.click();
    await expect(queued).toBeChecked();
    await expect(drawer).toContainText("1 filter on");
    await drawer.getByRole("button", { name: "Show tasks" }).click();
    await expect(drawer).toBeHidden();
    await expect(page).toHaveURL(/state=queued/);
    await expect(taskRow(page, "Writes hello")).toHaveCount(0);
    await expect(page.locator("tbody tr")).toHaveCount(3);
    const counted = page.getByRole("button", { name: "Filters (1)" });
    await expect(counted).toBeFocused();
    // Escape closes the drawer too, and a filter can be removed from it.
    await counted.click();
    await expect(drawer).toBeVisible();
    await queued.click();
    await expect(queued).not.toBeChecked();
    await page.keyboard.press("Escape");
    await expect(drawer).toBeHidden();
    await expect(page.getByRole("button", { name: "Filters", exact: true })).toBeFocused();
    await expect(taskRow(page, "Writes hello")).toBeVisible();
    await expectMenuReachable(page, "task list");

    // A link followed from the menu closes it.
    await page.getByRole("button", { name: "Menu" }).click();
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Workers" }).click();
    await expect(page).toHaveURL(/\/workers$/);
    await expect(page.getByRole("button", { name: "Menu" })).toHaveAttribute("aria-expanded", "false");
    await expect(page.getByRole("navigation", { name: "Main" })).toBeHidden();
  });

  await test.step("task detail: the tabs scroll inside their row; the rationale is on the Verdict tab only", async () => {
    await page.goto(`/tasks/${done.id}`);
    await expectHeadingOnScreen(page, "Writes hello");
    const facts = page.locator(".task-facts");
    await expect(facts).toContainText("Accepted");
    // The verdict is a badge in the header; its rationale is not repeated there.
    await expect(facts.locator(".verdict-badge")).toHaveText("Accepted");
    await expect(facts).not.toContainText(rationale.slice(0, 40));
    await expectNoPageOverflow(page, "task detail");
    await expectMenuReachable(page, "task detail");
    const tabs = page.getByRole("tab");
    for (const name of await tabs.allTextContents()) {
      const tab = page.getByRole("tab", { name });
      await tab.click();
      await expect(tab).toHaveAttribute("aria-selected", "true");
      await expect(tab).toBeInViewport({ ratio: 0.95 });
      await expect(page.getByRole("tabpanel")).toBeVisible();
      await expectNoPageOverflow(page, `task detail, ${name} tab`);
    }
    // The timeline points to the Verdict tab instead of repeating the rationale.
    await page.getByRole("tab", { name: /^Timeline/ }).click();
    const toVerdict = page.getByRole("tabpanel").getByRole("link", { name: /rationale is on the Verdict tab/ });
    await expect(toVerdict).toBeVisible();
    await expect(page.getByRole("tabpanel")).not.toContainText(rationale.slice(0, 40));
    await toVerdict.click();
    await expect(page.getByRole("tab", { name: "Verdict" })).toHaveAttribute("aria-selected", "true");
    await expect(page.getByRole("tabpanel")).toContainText(rationale.slice(0, 40));
    await expect(page.getByText(rationale.slice(0, 40))).toHaveCount(1);

    // A link to a tab far right in the row brings that tab into view.
    await page.goto(`/tasks/${done.id}?tab=audit`);
    await expect(page.getByRole("tab", { name: "Audit" })).toBeInViewport({ ratio: 0.95 });
    await expectNoPageOverflow(page, "task detail, opened on the Audit tab");

    // Every log line's text starts at the same place, whatever its source (stdout, stderr, the agency's progress).
    await page.goto(`/tasks/${done.id}?tab=logs`);
    const log = page.getByRole("log", { name: "Worker output" });
    await expect(log.locator('[data-stream="stdout"]')).toHaveCount(1);
    await expect(log.locator('[data-stream="stderr"]')).toHaveCount(1);
    await expect(log.locator('[data-stream="progress"]').first()).toBeVisible();
    const starts = await log
      .locator(".log-text")
      .evaluateAll((els) => els.map((el) => Math.round(el.getBoundingClientRect().left)));
    expect(starts.length).toBeGreaterThanOrEqual(3);
    expect(new Set(starts).size, `log text starts at ${starts.join(", ")}`).toBe(1);
    await expectNoPageOverflow(page, "task detail, Logs tab");
  });

  const [reference] = await server.api.workers.list.query();
  const webhook = await server.api.webhooks.create.mutate({
    name: "phone hook",
    url: "http://127.0.0.1:9/hook",
    events: ["task.failed", "worker.down"],
  });
  await server.api.webhooks.sendTest.mutate({ id: webhook.endpoint.id });
  const pages: [what: string, path: string, heading: string | RegExp, loaded: () => Promise<void>][] = [
    ["New task", "/tasks/new", "New task", () => expect(page.getByLabel("Title")).toBeVisible()],
    [
      "worker detail",
      `/workers/${reference?.id}`,
      "reference",
      () => expect(page.locator("table.worker-attempts").getByRole("link", { name: "Writes hello" })).toBeVisible(),
    ],
    [
      "workers",
      "/workers",
      "Workers",
      () => expect(page.getByRole("listitem", { name: "Worker reference" })).toBeVisible(),
    ],
    ["audit", "/audit", "Audit trail", () => expect(page.locator("tbody tr").first()).toBeVisible()],
    ["live metrics", "/live-metrics", "Metrics", () => expect(page.locator(".kpi").first()).toBeVisible()],
    [
      "approvals",
      "/approvals",
      "Approvals",
      async () => {
        await expect
          .poll(async () => (await server.api.tasks.get.query({ id: awaiting.id })).state, { timeout: 120_000 })
          .toBe("awaiting_approval");
        await page.reload();
        await expect(page.getByTestId("approval-review")).toContainText("approval.txt");
      },
    ],
    ["admin users", "/admin/users", "Users", () => expect(page.locator('tr[data-username="admin"]')).toBeVisible()],
    [
      "webhooks",
      "/admin/webhooks",
      "Webhooks",
      () => expect(page.locator('tr[data-webhook="phone hook"]')).toBeVisible(),
    ],
    [
      "webhook deliveries",
      `/admin/webhooks/${webhook.endpoint.id}`,
      "Webhook phone hook",
      () => expect(page.locator("tr[data-delivery]").first()).toBeVisible(),
    ],
    [
      "account tokens",
      "/account/tokens",
      "API tokens",
      async () => {
        await expect(page.getByRole("heading", { level: 1, name: "API tokens" })).toBeVisible();
        await expect(page.getByText("Loading tokens…")).toHaveCount(0);
      },
    ],
    [
      "account password",
      "/account/password",
      "Change password",
      () => expect(page.getByLabel("Current password")).toBeVisible(),
    ],
    [
      "not found",
      "/no-such-page",
      "Page not found",
      () => expect(page.getByRole("link", { name: "Go to the task list" })).toBeVisible(),
    ],
  ];
  for (const [what, path, heading, loaded] of pages) {
    await test.step(what, async () => {
      await page.goto(path);
      await loaded();
      await expectHeadingOnScreen(page, heading);
      await expectNoPageOverflow(page, what);
      await expectMenuReachable(page, what);
    });
  }

  await test.step("chat with a session", async () => {
    await page.goto(`/chat/${session.id}`);
    await expect(page.getByText("The queue is draining since the restart.")).toBeVisible();
    // The page's h1 is for screen readers ("Chat"); the session's title is what is seen first.
    await expect(page.getByRole("heading", { level: 1, name: "Chat" })).toBeAttached();
    await expect(page.getByRole("heading", { name: "Incident review" }).last()).toBeInViewport();
    await expect(page.getByRole("textbox", { name: "Message" })).toBeVisible();
    await expectNoPageOverflow(page, "chat");
    await expectMenuReachable(page, "chat");
  });

  await test.step("sign-in (signed out)", async () => {
    const context = await browser.newContext({ baseURL: server.url, viewport: { width: WIDTH, height: HEIGHT } });
    try {
      const signedOut = await context.newPage();
      await signedOut.goto("/sign-in");
      await expectHeadingOnScreen(signedOut, "Sign in");
      await expect(signedOut.getByRole("button", { name: "Sign in" })).toBeInViewport();
      await expectNoPageOverflow(signedOut, "sign-in");
    } finally {
      await context.close();
    }
  });

  await test.step("sign out from the menu", async () => {
    await page.goto("/workers");
    await expectHeadingOnScreen(page, "Workers");
    await page.getByRole("button", { name: "Menu" }).click();
    await page.getByRole("button", { name: "Sign out" }).click();
    await expect(page).toHaveURL(/\/sign-in/);
    await expectHeadingOnScreen(page, "Sign in");
  });
});

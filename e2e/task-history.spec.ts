import { readFile } from "node:fs/promises";
import { AxeBuilder } from "@axe-core/playwright";
import type { Page } from "@playwright/test";
import { expect, test } from "./fixtures.js";

// A task the council sends back every time, on the reference worker the server starts: three attempts (the
// first and its two automatic re-dispatches, MAX_AUTO_REDISPATCH's default), then an operator's retry, which
// is one attempt. The task page shows every attempt's files, verdict and output, and the log's tools.

test.describe.configure({ timeout: 600_000 });

const WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];

async function expectNoViolations(page: Page, what: string) {
  const results = await new AxeBuilder({ page }).withTags(WCAG_21_AA).analyze();
  const found = results.violations.map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes[0]?.target.join(" ")}`);
  expect(found, `axe violations on ${what}`).toEqual([]);
}

test("every attempt's files, verdict and output; log search, line links and download; JSON copy; proofs checked in the browser", async ({
  page,
  context,
  server,
}) => {
  const task = await server.api.tasks.create.mutate({
    title: "Placeholder every time",
    capability: "script",
    input: {
      script:
        "echo \"attempt-marker $(date +%s%N)\"; echo 'plain_line'; " +
        "printf 'def run():\\n    # TODO: implement\\n    pass\\n' > run.py",
    },
  });
  const get = () => server.api.tasks.get.query({ id: task.id });
  await expect
    .poll(
      async () => {
        const t = await get();
        return `${t.state} ${t.attempts.length}`;
      },
      { timeout: 240_000 },
    )
    .toBe("changes_requested 3");
  await server.api.tasks.retry.mutate({ id: task.id });
  await expect
    .poll(
      async () => {
        const t = await get();
        return `${t.state} ${t.attempts.length}`;
      },
      { timeout: 120_000 },
    )
    .toBe("changes_requested 4");
  const who = server.admin.username;

  await test.step("attempts: origins, waterfall, and two attempts' files and output open at once", async () => {
    await page.goto(`/tasks/${task.id}?tab=attempts`);
    const card = (n: number) => page.locator(`.attempt[data-attempt="${n}"]`);
    await expect(card(1).getByTestId("attempt-origin")).toContainText(`Submitted by ${who}`);
    await expect(card(2).getByTestId("attempt-origin")).toContainText(
      "Automatic re-dispatch after changes requested (1 of 2)",
    );
    await expect(card(3).getByTestId("attempt-origin")).toContainText("(2 of 2)");
    await expect(card(4).getByTestId("attempt-origin")).toContainText(
      `Retried by ${who}; automatic re-dispatches left: 0 of 2`,
    );

    const waterfall = page.getByTestId("waterfall");
    await expect(waterfall.getByRole("heading")).toContainText("Waterfall: 4 attempts");
    await waterfall.getByText("The waterfall as a table").click();
    await expect(waterfall.getByRole("table").locator("tbody tr")).toHaveCount(4);

    for (const n of [1, 2]) {
      const more = page.getByTestId(`attempt-more-${n}`);
      await more.locator("summary").click();
      await expect(more.locator('[data-path="run.py"] .diff-add').first()).toBeVisible();
      await expect(more.locator(".verdict-badge")).toHaveText("Changes requested");
      await expect(more.locator(".finding").first()).toContainText("run.py");
      const output = more.getByRole("log", { name: `Output of attempt ${n}` });
      await expect(output).toContainText("attempt-marker");
      await expect(output.locator(".log-attempt").first()).toHaveText(`#${n}`);
      await expect(output.locator(".log-attempt").filter({ hasNotText: `#${n}` })).toHaveCount(0);
    }
    // Both attempts' output is on the page at once, each its own.
    const m1 = await page
      .getByRole("log", { name: "Output of attempt 1" })
      .locator(".log-text")
      .filter({ hasText: /^attempt-marker/ })
      .textContent();
    const m2 = await page
      .getByRole("log", { name: "Output of attempt 2" })
      .locator(".log-text")
      .filter({ hasText: /^attempt-marker/ })
      .textContent();
    expect(m1).toMatch(/^attempt-marker \d+/);
    expect(m2).toMatch(/^attempt-marker \d+/);
    expect(m1).not.toBe(m2);
    await expectNoViolations(page, "the Attempts tab with two attempts open");
  });

  await test.step("timeline: the operator's retry and the automatic budget", async () => {
    await page.getByRole("tab", { name: /^Timeline/ }).click();
    await expect(page.getByRole("tabpanel")).toContainText(
      `Attempt 4 — retried by ${who}; automatic re-dispatches left: 0 of 2`,
    );
    await expect(page.getByRole("tabpanel")).toContainText(
      "Attempt 2: automatic re-dispatch after changes requested (1 of 2); automatic re-dispatches left: 1 of 2",
    );
    await expectNoViolations(page, "the Timeline tab");
  });

  await test.step("logs: timestamps, search, a link to a line, download", async () => {
    await page.getByRole("tab", { name: "Logs" }).click();
    const log = page.getByRole("log", { name: "Worker output" });
    await expect(log.locator(".log-time time").first()).toHaveText(/^\d\d:\d\d:\d\d\.\d{3}$/);
    await page.getByLabel("Search the output").fill("PLAIN_line");
    await expect(page.getByTestId("log-count")).toContainText(/^4 of \d+ lines match$/);
    await expect(log.locator(".log-text")).toHaveText(["plain_line", "plain_line", "plain_line", "plain_line"]);
    await page.getByRole("button", { name: "Search the whole log" }).click();
    await expect(page.getByTestId("log-count")).toHaveText("4 matching lines in the whole log");

    // The second attempt's marker line: its time links to it; the link brings it back, highlighted.
    const line = log.locator(".log-line").nth(1);
    const seq = (await line.getAttribute("data-seq")) as string;
    await line.locator(".log-time a").click();
    await expect(page).toHaveURL(new RegExp(`[?&]line=${seq}(&|$)`));
    await page.reload();
    const target = page.locator(`#L${seq}`);
    await expect(target).toHaveAttribute("data-highlighted", "true");
    await expect(target).toBeInViewport();
    await expect(target.locator(".log-text")).toHaveText("plain_line");

    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("link", { name: "Download log" }).click(),
    ]);
    expect(download.suggestedFilename()).toBe(`task-${task.id.slice(0, 8)}.log.txt`);
    const text = await readFile((await download.path()) as string, "utf8");
    const lines = text.split("\n").filter(Boolean);
    expect(lines.filter((l) => l.endsWith("\tplain_line"))).toHaveLength(4);
    expect(lines.filter((l) => /\t#4\tstdout\tattempt-marker \d+$/.test(l))).toHaveLength(1);
    await expectNoViolations(page, "the Logs tab with a highlighted line");
  });

  await test.step("JSON: the task as tasks.get answers it, copied whole", async () => {
    await context.grantPermissions(["clipboard-read", "clipboard-write"]);
    await page.getByRole("tab", { name: "JSON" }).click();
    await expect(page.getByTestId("raw-json")).toContainText(`"id": "${task.id}"`);
    await page.getByRole("button", { name: "Copy JSON" }).click();
    await expect(page.getByTestId("json-copy-status")).toHaveText("Copied to the clipboard.");
    const copied = JSON.parse(await page.evaluate(() => navigator.clipboard.readText()));
    expect(copied.id).toBe(task.id);
    expect(copied.attempts).toHaveLength(4);
    expect(copied.attempts[3].origin).toMatchObject({ kind: "retry", by: who });
    await expectNoViolations(page, "the JSON tab");
  });

  await test.step("provenance: the task's records, verified in the browser", async () => {
    await page.getByRole("tab", { name: "Provenance" }).click();
    await expect(page.getByTestId("browser-check")).toContainText("Verified in your browser");
    await expect(page.getByTestId("server-check")).toContainText("all verified");
    await expect(page.getByTestId("signature-check")).toContainText("valid");
    await expect(page.getByTestId("provenance-records").locator("tbody tr").first()).toContainText("verified");
    await expectNoViolations(page, "the Provenance tab");
  });

  await test.step("at 390 px: no tab of the history scrolls the page sideways", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    const pageWidth = () => page.evaluate(() => document.documentElement.scrollWidth);
    for (const tab of ["attempts", "logs", "provenance", "json"]) {
      await page.goto(`/tasks/${task.id}?tab=${tab}`);
      await expect(page.getByRole("tabpanel")).toBeVisible();
      if (tab === "attempts") {
        await page.getByTestId("attempt-more-1").locator("summary").click();
        await expect(page.getByRole("log", { name: "Output of attempt 1" })).toContainText("attempt-marker");
        await page.getByTestId("waterfall").getByText("The waterfall as a table").click();
      }
      if (tab === "logs") await expect(page.getByRole("log", { name: "Worker output" })).toContainText("plain_line");
      if (tab === "provenance") await expect(page.getByTestId("browser-check")).toContainText("Verified");
      await expect.poll(pageWidth, { message: `the ${tab} tab is wider than 390 px` }).toBeLessThanOrEqual(390);
    }
    // The log's text starts in one column on a phone too: the time, attempt and source above it.
    await page.goto(`/tasks/${task.id}?tab=logs`);
    const output = page.getByRole("log", { name: "Worker output" });
    await expect(output).toContainText("plain_line");
    const starts = await output
      .locator(".log-text")
      .evaluateAll((els) => els.map((e) => Math.round(e.getBoundingClientRect().left)));
    expect(new Set(starts).size).toBe(1);
  });
});

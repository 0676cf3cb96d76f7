import type { Page } from "@playwright/test";
import { expect, test } from "./fixtures.js";
import { expectLive, NO_WORKER } from "./helpers.js";
import type { ServerProcess } from "./server.js";

const kpi = (page: Page, key: string) => page.locator(`[data-kpi="${key}"]`);
const kpiValue = async (page: Page, key: string) => Number(await kpi(page, key).getAttribute("data-value"));
const status = (page: Page) => page.locator(".metrics-status");

/** Tasks the reference worker runs at once: a script that succeeds. */
async function submitRunnable(server: ServerProcess, prefix: string, n: number) {
  for (let i = 1; i <= n; i++) {
    await server.api.tasks.create.mutate({ title: `${prefix} ${i}`, input: { script: "true" } });
  }
}

test("throughput rises while tasks run, and the page carries on after a server restart", async ({ page, server }) => {
  await page.goto("/live-metrics");
  await expect(page.getByRole("heading", { name: "Metrics", level: 1 })).toBeVisible();
  await expect(status(page)).toHaveAttribute("data-live", "live");
  // A fresh server has finished nothing: the figure is a real zero, not a blank.
  await expect(kpi(page, "completedPerMin")).toHaveAttribute("data-value", "0");
  await expect(kpi(page, "successRate")).toHaveAttribute("data-value", "");
  await expect(page.locator('[data-chart="throughput"] canvas').first()).toBeVisible();
  await expect(page.getByRole("row").filter({ hasText: "reference" })).toHaveCount(1);

  await submitRunnable(server, "Measured", 5);
  await expect.poll(() => kpiValue(page, "completedPerMin"), { timeout: 30_000 }).toBeGreaterThanOrEqual(5);
  await expect(kpi(page, "successRate")).not.toHaveAttribute("data-value", "");
  await expect(kpi(page, "execP95")).not.toHaveAttribute("data-value", "");
  // The throughput chart has drawn what it measured.
  await expect(page.locator('[data-chart="throughput"] .chart-empty')).toHaveCount(0);

  const before = (await status(page).getAttribute("data-updated-at")) as string;
  await server.stop();
  await expect(status(page)).toHaveAttribute("data-live", "waiting");
  await expect(status(page)).toContainText("Not connected");

  await server.start();
  await expectLive(page);
  await expect(status(page)).toHaveAttribute("data-live", "live");
  await expect
    .poll(async () => Date.parse((await status(page).getAttribute("data-updated-at")) as string))
    .toBeGreaterThan(Date.parse(before));
  // After the restart the figures move again: tasks nobody can run show up in the queue depth...
  for (let i = 1; i <= 3; i++) {
    await server.api.tasks.create.mutate({ title: `Waiting ${i}`, capability: NO_WORKER });
  }
  await expect(kpi(page, "queueDepth")).toHaveAttribute("data-value", "3");
  // ...and runnable ones in the throughput, which the restarted server takes from the task event log.
  await submitRunnable(server, "After the restart", 3);
  await expect.poll(() => kpiValue(page, "completedPerMin"), { timeout: 30_000 }).toBeGreaterThanOrEqual(3);
});

test("the range selector keeps its choice in the address and the charts follow it", async ({ page }) => {
  await page.goto("/live-metrics");
  await expect(status(page)).toHaveAttribute("data-live", "live");
  await expect(page.getByRole("button", { name: "1 h" })).toHaveAttribute("aria-pressed", "true");
  await page.getByRole("button", { name: "7 d" }).click();
  await expect(page).toHaveURL(/\/live-metrics\?range=7d$/);
  await expect(page.getByRole("button", { name: "7 d" })).toHaveAttribute("aria-pressed", "true");
  await expect(page.getByText(/7 d of persisted 60-minute figures/)).toBeVisible();
  await page.reload();
  await expect(page.getByRole("button", { name: "7 d" })).toHaveAttribute("aria-pressed", "true");
  await expect(status(page)).toHaveAttribute("data-live", "live");
});

import http from "node:http";
import type { AddressInfo } from "node:net";
import { AxeBuilder } from "@axe-core/playwright";
import type { Page } from "@playwright/test";
import type { ExecuteRequest, ExecuteResult } from "../src/shared/worker-protocol.js";
import { expect, test } from "./fixtures.js";
import { createTask } from "./helpers.js";

test.describe.configure({ timeout: 300_000 });

const USAGE = { inputTokens: 12_345, outputTokens: 678, costUsd: 0.0425, model: "e2e-model-1" };

/** A real protocol v1 worker over HTTP whose results report usage: tokens, model and cost. */
async function startPricedWorker() {
  const server = http.createServer((req, res) => {
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { "Content-Type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (req.url === "/health") return json(200, { status: "ok", protocol: 1, capabilities: ["priced"], inFlight: 0 });
    if (req.url === "/cancel") return json(200, { status: "not_running" });
    if (req.url !== "/execute") return json(404, {});
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString();
    });
    req.on("end", () => {
      const request = JSON.parse(body) as ExecuteRequest;
      const result: ExecuteResult = {
        status: "completed",
        summary: `wrote out.txt for attempt ${request.attempt}`,
        artifacts: [{ path: "out.txt", operation: "create", content: "ok\n" }],
        usage: { ...USAGE, durationMs: 20 },
      };
      json(200, result);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

async function expectNoAxeViolations(page: Page, what: string) {
  const results = await new AxeBuilder({ page }).withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]).analyze();
  expect(
    results.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`),
    `${what}: axe violations`,
  ).toEqual([]);
}

test("usage a worker reports shows on the task and on the Metrics page", async ({ page, server }) => {
  await test.step("before any usage: the Metrics page says so", async () => {
    await page.goto("/live-metrics");
    await expect(page.getByRole("heading", { name: "Usage and cost" })).toBeVisible();
    await expect(page.getByTestId("usage-empty")).toContainText("No worker reported usage in the last 14 days");
  });

  const worker = await startPricedWorker();
  try {
    await server.api.workers.register.mutate({ name: "priced", url: worker.url, capabilities: ["priced"] });
    const task = await createTask(server, {
      title: "Priced work",
      capability: "priced",
      budget: { maxCostUsd: 0.5 },
    });
    await expect
      .poll(async () => (await server.api.tasks.get.query({ id: task.id })).state, { timeout: 120_000 })
      .toBe("accepted");

    await test.step("task overview: the total, the budget", async () => {
      await page.goto(`/tasks/${task.id}`);
      const usage = page.getByTestId("task-usage");
      await expect(usage).toContainText("$0.0425");
      await expect(usage).toContainText("12,345 tokens in, 678 out");
      await expect(usage).toContainText("e2e-model-1");
      await expect(usage).toContainText("(1 attempt)");
      await expect(page.locator(".spec-grid")).toContainText("$0.50 per attempt");
      await expectNoAxeViolations(page, "task overview with usage");
    });

    await test.step("attempt card: tokens, model, cost", async () => {
      await page.getByRole("tab", { name: /Attempts/ }).click();
      const card = page.locator('.attempt[data-attempt="1"]');
      await expect(card.getByTestId("attempt-tokens")).toHaveText("12,345 / 678");
      await expect(card.getByTestId("attempt-cost")).toHaveText("$0.0425");
      await expect(card).toContainText("e2e-model-1");
    });

    await test.step("Metrics page: by worker and by day", async () => {
      await page.goto("/live-metrics");
      const section = page.getByTestId("usage-section");
      await expect(section.getByTestId("usage-total")).toContainText("$0.0425 over 1 attempt");
      const row = section.locator('tr[data-usage-row="priced"]');
      await expect(row.locator("td")).toHaveText(["1", "12,345", "678", "$0.0425"]);
      const today = new Date().toISOString().slice(0, 10);
      await expect(section.locator(`tr[data-usage-row="${today}"] td`)).toHaveText(["1", "12,345", "678", "$0.0425"]);
      await expectNoAxeViolations(page, "Metrics page with usage");
    });

    await test.step("at 390 px the section stays inside the page", async () => {
      await page.setViewportSize({ width: 390, height: 844 });
      await page.goto("/live-metrics");
      await expect(page.getByTestId("usage-total")).toBeVisible();
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(overflow).toBeLessThanOrEqual(0);
    });
  } finally {
    worker.close();
  }
});

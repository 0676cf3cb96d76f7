import http from "node:http";
import type { AddressInfo } from "node:net";
import { expect, test } from "./fixtures.js";
import { createTask } from "./helpers.js";

/** A real worker over HTTP: healthy, answers its first /execute with 503, and keeps every later one open. */
async function startFlakyWorker() {
  let executes = 0;
  const open: http.ServerResponse[] = [];
  const server = http.createServer((req, res) => {
    if (req.url === "/health") {
      res.writeHead(200, { "Content-Type": "application/json" });
      return void res.end(JSON.stringify({ status: "ok", protocol: 1, capabilities: ["flaky"], inFlight: 0 }));
    }
    if (req.url === "/execute") {
      executes++;
      if (executes === 1) {
        res.writeHead(503, { "Content-Type": "text/plain", "Retry-After": "0" });
        return void res.end("warming up");
      }
      open.push(res);
      return;
    }
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end("{}");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    executes: () => executes,
    close: () => {
      for (const res of open) res.destroy();
      server.closeAllConnections();
      server.close();
    },
  };
}

test("a running attempt's card counts its tries as the timeline does", async ({ page, server }) => {
  const worker = await startFlakyWorker();
  try {
    await server.api.workers.register.mutate({ name: "flaky", url: worker.url, capabilities: ["flaky"] });
    const task = await createTask(server, { title: "Second try", capability: "flaky" });
    await page.goto(`/tasks/${task.id}?tab=timeline`);
    await expect(page.locator('[data-event-type="attempt_try_failed"]')).toContainText(/Try 1 of \d/, {
      timeout: 30_000,
    });
    await expect.poll(worker.executes, { timeout: 30_000 }).toBe(2);

    await page.getByRole("tab", { name: /Attempts/ }).click();
    const card = page.locator('.attempt[data-attempt="1"]');
    await expect(card).toContainText("running");
    const tries = card.locator(".attempt-facts > div").filter({ has: page.getByText("Tries", { exact: true }) });
    await expect(tries.locator("dd")).toHaveText(/^try 2 of \d$/);
  } finally {
    worker.close();
  }
});

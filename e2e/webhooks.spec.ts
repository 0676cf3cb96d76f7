import { createHmac } from "node:crypto";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { expect, test } from "./fixtures.js";

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

/** The Standard Webhooks check, written here with node:crypto alone. */
function verified(secret: string, r: Received): boolean {
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const expected = createHmac("sha256", key)
    .update(`${r.headers["webhook-id"]}.${r.headers["webhook-timestamp"]}.${r.body}`)
    .digest("base64");
  return String(r.headers["webhook-signature"]).split(" ").includes(`v1,${expected}`);
}

test("an admin registers a webhook, sees its test delivery arrive signed, and replays it", async ({ page }) => {
  const received: Received[] = [];
  const receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
      res.writeHead(200, { "content-type": "text/plain" }).end("thanks");
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks/console`;
  try {
    await page.goto("/admin/users");
    await page.getByRole("link", { name: "Webhooks" }).click();
    await expect(page.getByRole("heading", { level: 1, name: "Webhooks" })).toBeVisible();

    // The form checks with the server's schema first: no event chosen is refused on the page.
    const form = page.getByRole("form", { name: "Add webhook" });
    await form.getByLabel("Name").fill("console hook");
    await form.getByLabel("URL").fill(url);
    await form.getByRole("button", { name: "Add webhook" }).click();
    await expect(form).toContainText("Choose at least one event");

    // A host outside the allowlist is the server's clear refusal.
    await form.getByLabel("URL").fill("https://hooks.example.net/x");
    await form.getByRole("checkbox", { name: /Task failed/ }).check();
    await form.getByRole("button", { name: "Add webhook" }).click();
    await expect(form.getByRole("alert")).toContainText(
      'Webhook host "hooks.example.net" is not in WORKER_ALLOWED_HOSTS',
    );

    await form.getByLabel("URL").fill(url);
    await form.getByRole("button", { name: "Add webhook" }).click();
    const secretBox = page.getByRole("textbox", { name: "Signing secret" });
    await expect(secretBox).toHaveValue(/^whsec_/);
    const secret = await secretBox.inputValue();
    await page.getByRole("button", { name: "Done" }).click();
    await expect(secretBox).toHaveCount(0);
    const row = page.locator('tr[data-webhook="console hook"]');
    await expect(row).toContainText("Enabled");
    await expect(row).toContainText("task.failed");

    await row.getByRole("link", { name: "console hook" }).click();
    await expect(page.getByRole("heading", { level: 1, name: "Webhook console hook" })).toBeVisible();
    await expect(page.getByText("No deliveries yet.")).toBeVisible();
    await page.getByRole("button", { name: "Send test event" }).click();
    const first = page.locator("tr[data-delivery]").first();
    await expect(first).toHaveAttribute("data-status", "delivered", { timeout: 20_000 });
    await expect(first).toContainText("webhook.test");
    await expect(first).toContainText("HTTP 200");
    expect(received).toHaveLength(1);
    expect(verified(secret, received[0] as Received)).toBe(true);

    await first.getByRole("button", { name: "Replay webhook.test" }).click();
    const rows = page.locator("tr[data-delivery]");
    await expect(rows).toHaveCount(2);
    const replay = rows.first();
    await expect(replay).toContainText("Replay");
    await expect(replay).toHaveAttribute("data-status", "delivered", { timeout: 20_000 });
    expect(received).toHaveLength(2);
    expect(received[1]?.headers["webhook-id"]).toBe(received[0]?.headers["webhook-id"]);
    expect(verified(secret, received[1] as Received)).toBe(true);
  } finally {
    receiver.closeAllConnections();
    await new Promise<void>((resolve) => receiver.close(() => resolve()));
  }
});

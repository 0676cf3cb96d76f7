import type { BrowserContext, Page } from "@playwright/test";
import { expect, test } from "./fixtures.js";
import { expectLive, taskRow } from "./helpers.js";
import type { ServerProcess } from "./server.js";

const OPERATOR = { username: "olga", displayName: "Olga Operator", password: "olga-operator-password" };

async function signInAs(context: BrowserContext, server: ServerProcess, username: string, password: string) {
  const res = await context.request.post(`${server.url}/trpc/auth.signIn`, { data: { json: { username, password } } });
  if (!res.ok()) throw new Error(`Signing in as ${username} failed: ${res.status()} ${await res.text()}`);
  // A user an admin created chooses their own password at first sign-in (as the console's page would).
  const changed = await context.request.post(`${server.url}/trpc/auth.changePassword`, {
    data: { json: { currentPassword: password, newPassword: `${password}-own` } },
    headers: { origin: server.url },
  });
  if (!changed.ok()) throw new Error(`Choosing ${username}'s password failed: ${changed.status()}`);
}

const composer = (page: Page) => page.getByRole("textbox", { name: "Message" });
const messages = (page: Page) => page.getByRole("list", { name: "Messages" });
const message = (page: Page, text: string) => messages(page).locator(".chat-message").filter({ hasText: text });
const expectChatLive = (page: Page) =>
  expect(page.locator("[data-chat-live]")).toHaveAttribute("data-chat-live", "live");

test("two operators in one session see each other's messages and typing as they happen", async ({
  page,
  browser,
  server,
}) => {
  await server.api.users.create.mutate({ ...OPERATOR, role: "operator" });
  const session = await server.api.chat.sessions.create.mutate({ title: "Incident review" });
  const olgaContext = await browser.newContext({ baseURL: server.url });
  await signInAs(olgaContext, server, OPERATOR.username, OPERATOR.password);
  const olga = await olgaContext.newPage();
  try {
    await page.goto("/chat");
    await page.getByRole("link", { name: /Incident review/ }).click();
    await expect(page).toHaveURL(`/chat/${session.id}`);
    await olga.goto(`/chat/${session.id}`);
    await expect(page.getByRole("heading", { name: "Incident review" })).toBeVisible();
    await expect(olga.getByRole("heading", { name: "Incident review" })).toBeVisible();
    await expectChatLive(page);
    await expectChatLive(olga);

    // Olga types: the admin sees it before anything is sent, and the indicator goes once she sends.
    await composer(olga).pressSequentially("The queue is draining");
    await expect(page.locator(".chat-typing")).toHaveText("Olga Operator is typing…");
    await composer(olga).press("Shift+Enter");
    await composer(olga).pressSequentially("since the restart.");
    await composer(olga).press("Enter");
    await expect(composer(olga)).toHaveValue("");
    const fromOlga = message(page, "The queue is draining");
    await expect(fromOlga).toHaveCount(1);
    await expect(fromOlga.locator(".chat-text")).toHaveText("The queue is draining\nsince the restart.");
    await expect(fromOlga.locator(".chat-author")).toHaveText("Olga Operator");
    await expect(page.locator(".chat-typing")).toHaveText("");
    // On her own page it is stored (no longer "Sending…"), shown once.
    await expect(message(olga, "The queue is draining")).toHaveCount(1);
    await expect(message(olga, "The queue is draining")).not.toHaveAttribute("data-outgoing", /.*/);

    await composer(page).fill("Thanks, I will watch the metrics.");
    await composer(page).press("Enter");
    await expect(message(olga, "Thanks, I will watch the metrics.")).toHaveCount(1);
    await expect(message(olga, "Thanks, I will watch the metrics.").locator(".chat-author")).toHaveText(
      "Administrator",
    );

    // With no chat worker registered, the assistant says so to each free-text message.
    await expect(
      messages(olga).locator('.chat-message[data-role="assistant"]').filter({ hasText: "No chat worker is available" }),
    ).toHaveCount(2);

    // /help lists the commands, for both of them.
    await composer(olga).fill("/help");
    await composer(olga).press("Enter");
    for (const p of [page, olga]) {
      const help = messages(p)
        .locator('.chat-message[data-role="assistant"]')
        .filter({ has: p.locator(".chat-text", { hasText: /^Commands:/ }) });
      await expect(help).toHaveCount(1);
      for (const command of ["/status", "/tasks [state]", "/task <title>", "/cancel <task id>", "/retry <task id>"]) {
        await expect(help).toContainText(command);
      }
    }
  } finally {
    await olgaContext.close();
  }
});

test("/task submits a task whose chip opens it, and the task is in the task list; a viewer only reads", async ({
  page,
  browser,
  server,
}) => {
  const session = await server.api.chat.sessions.create.mutate({ title: "Docs" });
  await page.goto(`/chat/${session.id}`);
  await expectChatLive(page);
  // Without a script the task could only fail: refused with how to give one, and nothing is created.
  await composer(page).fill("/task Write the docs");
  await composer(page).press("Enter");
  await expect(message(page, "A script task needs a script")).toHaveCount(1);
  expect((await server.api.tasks.list.query({ filter: { text: "Write the docs" } })).items).toHaveLength(0);

  await composer(page).fill("/task Write the docs\necho docs > DOCS.md");
  await composer(page).press("Enter");

  const reply = messages(page).locator('.chat-message[data-role="assistant"]').filter({ hasText: "Submitted" });
  await expect(reply).toHaveCount(1);
  const chip = reply.getByRole("link", { name: "Write the docs" });
  await expect(chip).toHaveAttribute("href", /^\/tasks\/[0-9a-f-]{36}$/);
  const href = (await chip.getAttribute("href")) as string;
  await chip.click();
  await expect(page).toHaveURL(href);
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Write the docs");

  await page.goto("/tasks");
  await expect(taskRow(page, "Write the docs")).toHaveCount(1);
  const listed = await server.api.tasks.list.query({ filter: { text: "Write the docs" } });
  expect(listed.items.map((t) => `/tasks/${t.id}`)).toEqual([href]);

  await server.api.users.create.mutate({ username: "vera", password: "vera-viewer-password", role: "viewer" });
  const veraContext = await browser.newContext({ baseURL: server.url });
  try {
    await signInAs(veraContext, server, "vera", "vera-viewer-password");
    const vera = await veraContext.newPage();
    await vera.goto(`/chat/${session.id}`);
    await expect(message(vera, "Submitted").getByRole("link", { name: "Write the docs" })).toHaveCount(1);
    await expect(vera.getByText("writing needs the operator role")).toBeVisible();
    await expect(composer(vera)).toHaveCount(0);
    await expect(vera.getByRole("button", { name: "New session" })).toHaveCount(0);
    await expect(vera.getByRole("button", { name: "Rename" })).toHaveCount(0);
  } finally {
    await veraContext.close();
  }
});

test("a message sent while the server is down is marked not sent, then sent by itself once the connection is back, once", async ({
  page,
  server,
}) => {
  const session = await server.api.chat.sessions.create.mutate({ title: "Outage" });
  await page.goto(`/chat/${session.id}`);
  await expectChatLive(page);

  await server.stop();
  await composer(page).fill("Sent during the outage");
  await composer(page).press("Enter");
  const outgoing = messages(page).locator(".chat-message[data-outgoing]").filter({ hasText: "Sent during the outage" });
  await expect(outgoing).toHaveAttribute("data-outgoing", "failed");
  await expect(outgoing.getByRole("alert")).not.toBeEmpty();
  await expect(page.locator("[data-chat-live]")).toHaveAttribute("data-chat-live", "down");
  // The session says the same connection state as the header's badge.
  const states = await page.evaluate(() => ({
    header: document.querySelector("[data-connection] [role=status]")?.textContent ?? "",
    session: document.querySelector("[data-chat-live]")?.textContent ?? "",
  }));
  const label = states.header.replace("Live connection: ", "");
  expect(["Offline", "Reconnecting"]).toContain(label);
  expect(states.session).toContain(`${label}:`);

  await server.start();
  await expectLive(page);
  await expectChatLive(page);
  // No Retry press: the outbox sends it again when the connection is back.
  await expect(message(page, "Sent during the outage")).toHaveCount(1);
  await expect(message(page, "Sent during the outage")).not.toHaveAttribute("data-outgoing", /.*/);
  // A second retry of the same clientId would not store it again either: the server holds exactly one.
  const stored = await server.api.chat.messages.query({ sessionId: session.id });
  expect(stored.items.filter((m) => m.content === "Sent during the outage")).toHaveLength(1);
});

test("scrolling up loads older messages; an ended session is read-only", async ({ page, server }) => {
  const session = await server.api.chat.sessions.create.mutate({ title: "Long one" });
  // Each rename writes a system message, and renames are not rate limited like sends: 70 messages fast.
  for (let i = 1; i <= 70; i++) {
    await server.api.chat.sessions.rename.mutate({ sessionId: session.id, title: `Long one, part ${i}` });
  }
  await page.goto(`/chat/${session.id}`);
  await expect(message(page, 'renamed the session to "Long one, part 70"')).toHaveCount(1);
  await expect(message(page, "started the session")).toHaveCount(0);
  await page.locator(".chat-log").evaluate((el) => {
    el.scrollTop = 0;
  });
  await expect(message(page, "started the session")).toHaveCount(1);
  await expect(page.getByText(/Start of the session/)).toBeVisible();
  await expect(messages(page).locator(".chat-message")).toHaveCount(71);

  await page.getByRole("button", { name: "End session" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "End session" }).click();
  await expect(page.getByRole("dialog")).toHaveCount(0);
  await expect(page.locator(".chat-title")).toContainText("Ended");
  await expect(composer(page)).toHaveCount(0);
  await expect(page.getByText(/This session was ended/)).toBeVisible();
  await expect(page.getByRole("button", { name: "Rename" })).toHaveCount(0);
  await expect(
    server.api.chat.send.mutate({ sessionId: session.id, content: "late", clientId: "late-message-1" }),
  ).rejects.toThrow(/ended/);
});

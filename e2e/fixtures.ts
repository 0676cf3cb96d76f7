import { type BrowserContext, test as base } from "@playwright/test";
import { ServerProcess } from "./server.js";

/**
 * Signs the browser context in as the server's first admin; the session cookie then rides on every
 * request and on the WebSocket handshake. A server without sign-in (no `auth.signIn`) needs none.
 */
export async function signIn(context: BrowserContext, server: ServerProcess): Promise<void> {
  const res = await context.request.post(`${server.url}/trpc/auth.signIn`, {
    data: { json: { username: server.admin.username, password: server.admin.password } },
  });
  if (res.status() === 404) return;
  if (!res.ok()) throw new Error(`Signing in as ${server.admin.username} failed: ${res.status()} ${await res.text()}`);
}

/** Every test gets its own server process and data directory, so tests never see each other's tasks. */
export const test = base.extend<{ server: ServerProcess }>({
  // biome-ignore lint/correctness/noEmptyPattern: Playwright reads the fixture's dependencies from this pattern.
  server: async ({}, use) => {
    const server = await ServerProcess.launch();
    try {
      await use(server);
    } finally {
      await server.dispose();
    }
  },
  baseURL: async ({ server }, use) => {
    await use(server.url);
  },
  context: async ({ context, server }, use) => {
    await signIn(context, server);
    await use(context);
  },
});

export { expect } from "@playwright/test";

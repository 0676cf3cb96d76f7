import { test as base } from "@playwright/test";
import { ServerProcess } from "./server.js";

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
});

export { expect } from "@playwright/test";

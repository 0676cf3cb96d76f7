import type { AddressInfo } from "node:net";
import { createTRPCClient, createWSClient, httpBatchLink, wsLink } from "@trpc/client";
import superjson from "superjson";
import WebSocket from "ws";
import { type App, createApp } from "../../src/server/app.js";
import { loadConfig } from "../../src/server/config.js";
import type { AppRouter } from "../../src/server/router.js";
import { createServices, type Services } from "../../src/server/services.js";
import { freshDatabase, type TestDatabase } from "./databases.js";
import { silentLog } from "./services.js";

export interface RunningApp {
  url: string;
  app: App;
  db: TestDatabase;
  services: Services;
  http: ReturnType<typeof createTRPCClient<AppRouter>>;
  /** A client whose calls all go over one WebSocket. */
  ws(): { client: ReturnType<typeof createTRPCClient<AppRouter>>; close(): Promise<void> };
  stop(): Promise<void>;
}

/** The real HTTP + WebSocket server on an ephemeral port, over a fresh database. */
export async function startApp(
  kind: "pglite" | "postgres",
  env: Record<string, string> = {},
  opts: { migrate?: boolean } = {},
): Promise<RunningApp> {
  const db = await freshDatabase(kind, opts);
  const config = loadConfig({ PORT: "0", HOST: "127.0.0.1", WEB_DIST_DIR: "/nonexistent", ...env });
  const services = await createServices(db, silentLog);
  const app = createApp({ config, log: silentLog, services });
  await new Promise<void>((resolve) => app.server.listen(0, "127.0.0.1", resolve));
  const { port } = app.server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    app,
    db,
    services,
    http: createTRPCClient<AppRouter>({ links: [httpBatchLink({ url: `${url}/trpc`, transformer: superjson })] }),
    ws() {
      const wsClient = createWSClient({ url: `ws://127.0.0.1:${port}/trpc`, WebSocket: WebSocket as never });
      return {
        client: createTRPCClient<AppRouter>({ links: [wsLink({ client: wsClient, transformer: superjson })] }),
        close: () => wsClient.close(),
      };
    },
    async stop() {
      await app.close();
      await db.dispose();
    },
  };
}

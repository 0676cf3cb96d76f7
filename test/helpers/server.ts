import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { createTRPCClient, createWSClient, httpBatchLink, wsLink } from "@trpc/client";
import superjson from "superjson";
import WebSocket from "ws";
import { type App, createApp } from "../../src/server/app.js";
import type { AppRouter } from "../../src/server/router.js";
import { createServices, type Services } from "../../src/server/services.js";
import type { Actor, Role } from "../../src/shared/roles.js";
import { freshDatabase, type TestDatabase } from "./databases.js";
import { silentLog, testConfig } from "./services.js";

export interface RunningApp {
  url: string;
  app: App;
  db: TestDatabase;
  services: Services;
  http: ReturnType<typeof createTRPCClient<AppRouter>>;
  /** A client whose calls all go over one WebSocket. */
  ws(): { client: ReturnType<typeof createTRPCClient<AppRouter>>; close(): Promise<void> };
  /** API token of the user the clients act as: LOCAL_ACTOR_ID with LOCAL_ACTOR_ROLE (default local-operator, operator). */
  token: string;
  /** Clients acting with another token, or anonymously (null). */
  httpAs(token: string | null): ReturnType<typeof createTRPCClient<AppRouter>>;
  wsAs(token: string | null): { client: ReturnType<typeof createTRPCClient<AppRouter>>; close(): Promise<void> };
  stop(): Promise<void>;
}

/** The real HTTP + WebSocket server on an ephemeral port, over a fresh database. */
export async function startApp(
  kind: "pglite" | "postgres",
  env: Record<string, string> = {},
  opts: { migrate?: boolean } = {},
): Promise<RunningApp> {
  const db = await freshDatabase(kind, opts);
  const config = testConfig({ PORT: "0", HOST: "127.0.0.1", WEB_DIST_DIR: "/nonexistent", ...env });
  const services = await createServices(db, silentLog, config);
  const token = await tokenFor(services, config.LOCAL_ACTOR_ID, config.LOCAL_ACTOR_ROLE);
  const app = createApp({ config, log: silentLog, services });
  await new Promise<void>((resolve) => app.server.listen(0, "127.0.0.1", resolve));
  const { port } = app.server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    app,
    db,
    services,
    token,
    http: httpClient(url, token),
    ws: () => wsClient(port, token),
    httpAs: (t) => httpClient(url, t),
    wsAs: (t) => wsClient(port, t),
    async stop() {
      await app.close();
      await db.dispose();
    },
  };
}

function httpClient(url: string, token: string | null) {
  return createTRPCClient<AppRouter>({
    links: [
      httpBatchLink({
        url: `${url}/trpc`,
        transformer: superjson,
        headers: () => (token ? { Authorization: `Bearer ${token}` } : {}),
      }),
    ],
  });
}

function wsClient(port: number, token: string | null) {
  const client = createWSClient({
    url: `ws://127.0.0.1:${port}/trpc`,
    WebSocket: WebSocket as never,
    ...(token ? { connectionParams: { token } } : {}),
  });
  return {
    client: createTRPCClient<AppRouter>({ links: [wsLink({ client, transformer: superjson })] }),
    close: () => client.close(),
  };
}

/** Makes (or reuses) the user and gives it a fresh API token: the test clients sign in like automation does. */
export async function tokenFor(services: Services, username: string, role: Role): Promise<string> {
  const system: Actor = { kind: "system", id: "test-setup", name: "test setup", role: "admin" };
  const existing = (await services.auth.listUsers()).find((u) => u.username === username);
  if (!existing) {
    await services.auth.createUser(
      { actor: system },
      { username, role, password: `pw-${randomBytes(12).toString("hex")}` },
    );
  }
  const user: Actor = { kind: "user", id: username, name: username, role };
  return (await services.auth.createToken({ actor: user }, "tests")).token;
}

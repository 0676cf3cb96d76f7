import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { createTRPCClient, httpBatchLink } from "@trpc/client";
import pino from "pino";
import superjson from "superjson";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../src/server/app.js";
import { loadConfig } from "../src/server/config.js";
import { openKeystore } from "../src/server/keystore/index.js";
import { resealAll } from "../src/server/keystore/rotate.js";
import type { AppRouter } from "../src/server/router.js";
import { createServices, type Services } from "../src/server/services.js";
import { freshDatabase, type TestDatabase } from "./helpers/databases.js";
import { testConfig } from "./helpers/services.js";

// A full run of the trust flows with every log line captured at trace level: none of the secrets may appear.
describe("secrets never reach a log line or a response", () => {
  const lines: string[] = [];
  const log = pino(
    { level: "trace" },
    new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    }),
  );
  const masterKey = randomBytes(32).toString("base64");
  const previousKey = randomBytes(32).toString("base64");
  const adminPassword = `admin-${randomBytes(9).toString("hex")}`;
  const bootstrapToken = `boot-${randomBytes(24).toString("hex")}`;
  const secrets = [masterKey, previousKey, adminPassword, bootstrapToken];
  const responses: string[] = [];
  let db: TestDatabase;
  let services: Services;
  let url: string;
  let close: () => Promise<void>;

  const client = (headers: Record<string, string>) =>
    createTRPCClient<AppRouter>({
      links: [
        httpBatchLink({
          url: `${url}/trpc`,
          transformer: superjson,
          headers: () => headers,
          fetch: async (input, init) => {
            const res = await fetch(input, init);
            responses.push(`${res.headers.get("set-cookie") ?? ""} ${await res.clone().text()}`);
            return res;
          },
        }),
      ],
    });

  beforeAll(async () => {
    db = await freshDatabase("pglite");
    const env = {
      PORT: "0",
      WEB_DIST_DIR: "/nonexistent",
      LOG_LEVEL: "trace",
      KEYSTORE: "env",
      AGENCY_MASTER_KEY: masterKey,
      AGENCY_ADMIN_PASSWORD: adminPassword,
      AGENCY_BOOTSTRAP_TOKEN: bootstrapToken,
      EXECUTION_ENABLED: "0",
    };
    const config = testConfig(env);
    services = await createServices(db, log, config);
    const app = createApp({ config, log, services });
    await new Promise<void>((resolve) => app.server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    close = async () => {
      await app.close();
      await services.stop();
    };
  });
  afterAll(async () => {
    await close();
    await db.dispose();
  });

  it("runs sign-in, users, tokens, audit, provenance and key rotation without leaking", async () => {
    const admin = client({ authorization: `Bearer ${bootstrapToken}` });
    const anon = client({});
    const userPassword = `user-${randomBytes(9).toString("hex")}`;
    secrets.push(userPassword);
    await admin.users.create.mutate({ username: "leo", role: "operator", password: userPassword });
    // bad input that carries a password: the validation error must not echo it
    const short = `s${randomBytes(3).toString("hex")}`;
    secrets.push(short);
    await expect(admin.users.create.mutate({ username: "leo2", role: "viewer", password: short })).rejects.toThrow(
      /at least 12/,
    );
    await expect(anon.auth.signIn.mutate({ username: "leo", password: `${userPassword}-wrong` })).rejects.toThrow(
      /Wrong username or password/,
    );
    secrets.push(`${userPassword}-wrong`);
    await anon.auth.signIn.mutate({ username: "leo", password: userPassword });
    const cookie = /agency_session=([^;]+)/.exec(responses.at(-1) ?? "")?.[1] as string;
    expect(cookie).toBeTruthy();
    // as the console's page: Origin on every call with the cookie
    const leo = client({ cookie: `agency_session=${cookie}`, origin: url });
    // an admin set leo's password: leo chooses their own before anything else
    const newPassword = `new-${randomBytes(9).toString("hex")}`;
    secrets.push(newPassword);
    await leo.auth.changePassword.mutate({ currentPassword: userPassword, newPassword });
    const created = await leo.tokens.create.mutate({ name: "automation" });
    const viaToken = client({ authorization: `Bearer ${created.token}` });
    expect((await viaToken.auth.me.query())?.user.username).toBe("leo");
    await leo.tokens.revoke.mutate({ id: created.id });
    await expect(viaToken.tasks.list.query({})).rejects.toThrow(/Sign in first/);
    await leo.auth.signOut.mutate();
    await admin.users.list.query();
    await admin.tokens.list.query({ all: true });
    await admin.audit.list.query({ limit: 200 });
    await services.provenance.appendNow({ kind: "task.created", taskId: "t", payload: { title: "x" } });
    await admin.provenance.verify.query();

    // a rotation (the operator moved the old key to _PREVIOUS) re-seals the signing key without logging either key
    const rotated = await openKeystore({
      ...loadConfig({ KEYSTORE: "env", AGENCY_MASTER_KEY: previousKey, AGENCY_MASTER_KEY_PREVIOUS: masterKey }),
    });
    expect((await resealAll(db, rotated)).resealed).toBe(1);
    // a wrong master key is refused with a message that names no key material
    const err = await openKeystore(loadConfig({ KEYSTORE: "env", AGENCY_MASTER_KEY: masterKey.slice(0, 20) })).catch(
      (e: Error) => e.message,
    );
    lines.push(String(err));

    const everything = [...lines, ...responses].join("\n");
    expect(lines.length).toBeGreaterThan(0);
    expect(responses.length).toBeGreaterThan(10);
    // session cookies appear only in Set-Cookie headers, never in a body or a log
    expect(lines.join("\n")).not.toContain(cookie);
    expect(responses.filter((r) => r.includes(cookie)).every((r) => r.startsWith("agency_session="))).toBe(true);
    for (const secret of secrets) {
      const where = everything.includes(secret) ? "leaked" : "absent";
      expect({ secret: `${secret.slice(0, 3)}…`, where }).toEqual({
        secret: `${secret.slice(0, 3)}…`,
        where: "absent",
      });
    }
    // an API token is shown once, in the response that created it, and never logged
    expect(lines.join("\n")).not.toContain(created.token);
    expect(responses.join("\n").split(created.token).length - 1).toBe(1);
    const audit = JSON.stringify(await db.prisma.auditEntry.findMany(), (_k, v) =>
      typeof v === "bigint" ? v.toString() : v,
    );
    for (const secret of [...secrets, created.token]) expect(audit.includes(secret)).toBe(false);
  });
});

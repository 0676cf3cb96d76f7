import { createHmac } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { createTRPCClient, httpBatchLink, TRPCClientError } from "@trpc/client";
import superjson from "superjson";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isSealed } from "../src/server/keystore/secrets.js";
import type { AppRouter } from "../src/server/router.js";
import { createServices } from "../src/server/services.js";
import { claimDue } from "../src/server/webhooks/outbox.js";
import { TASK_STATE_EVENTS, type WebhookEventType } from "../src/shared/webhooks.js";
import { DATABASES, freshDatabase } from "./helpers/databases.js";
import {
  ADMIN_TOKEN,
  deadWorkerUrl,
  type EngineApp,
  FAST_ENV,
  startEngineApp,
  waitFor,
} from "./helpers/fault-worker.js";
import { tokenFor } from "./helpers/server.js";
import { silentLog, testConfig } from "./helpers/services.js";
import { type ReferenceWorkerProcess, startReferenceWorkerProcess } from "./helpers/worker.js";

/** What the receiver does with one request: answer a status (with headers), or never answer. */
type Behaviour = { status: number; headers?: Record<string, string>; body?: string } | "hang";

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
  /** Whether the signature verified with the path's secret (the test's own HMAC, not the server's code). */
  verified: boolean;
}

/**
 * A real HTTP receiver: each path has a script of answers (then 200), and a secret to verify the
 * Standard Webhooks signature with; a request whose signature does not verify gets 401.
 */
class Receiver {
  readonly received: Received[] = [];
  private readonly scripts = new Map<string, Behaviour[]>();
  private readonly secrets = new Map<string, string>();
  private readonly hanging = new Set<ServerResponse>();
  private server!: Server;
  url = "";

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        const path = req.url ?? "/";
        const secret = this.secrets.get(path);
        const verified = secret ? verifyStandardWebhook(secret, req.headers, body) : false;
        this.received.push({ path, headers: req.headers, body, at: Date.now(), verified });
        if (secret && !verified) {
          res.writeHead(401).end("bad signature");
          return;
        }
        const next = this.scripts.get(path)?.shift() ?? { status: 200, body: "ok" };
        if (next === "hang") {
          this.hanging.add(res);
          return;
        }
        res.writeHead(next.status, next.headers ?? {}).end(next.body ?? `answer ${next.status}`);
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  on(path: string, secret: string, script: Behaviour[] = []): void {
    this.secrets.set(path, secret);
    this.scripts.set(path, script);
  }

  at(path: string): Received[] {
    return this.received.filter((r) => r.path === path);
  }

  async stop(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** The Standard Webhooks check, written here from the specification with node:crypto alone. */
function verifyStandardWebhook(secret: string, headers: IncomingHttpHeaders, body: string): boolean {
  const id = headers["webhook-id"];
  const timestamp = headers["webhook-timestamp"];
  const signatures = headers["webhook-signature"];
  if (typeof id !== "string" || typeof timestamp !== "string" || typeof signatures !== "string") return false;
  if (Math.abs(Date.now() / 1000 - Number(timestamp)) > 300) return false;
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const expected = createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64");
  return signatures.split(" ").includes(`v1,${expected}`);
}

const codeOf = (err: unknown) => (err instanceof TRPCClientError ? (err.data as { code?: string })?.code : undefined);

const WEBHOOK_ENV = {
  WEBHOOK_POLL_INTERVAL_MS: "50",
  WEBHOOK_TIMEOUT_MS: "1000",
  WEBHOOK_RETRY_BASE_DELAY_MS: "50",
  WEBHOOK_RETRY_MAX_DELAY_MS: "200",
  WEBHOOK_MAX_ATTEMPTS: "3",
  PUBLIC_URL: "https://agency.example.com",
};

describe.each(DATABASES)("webhooks against a real receiver on %s", (kind) => {
  let s: EngineApp;
  let rx: Receiver;
  let worker: ReferenceWorkerProcess;

  beforeAll(async () => {
    rx = new Receiver();
    await rx.start();
    worker = await startReferenceWorkerProcess({ env: { WORKER_TOKEN: "wh-token", WORKER_MAX_CONCURRENCY: "4" } });
    s = await startEngineApp(kind, { ...WEBHOOK_ENV, MAX_AUTO_REDISPATCH: "0" });
    await s.http.workers.register.mutate({
      name: "reference",
      url: worker.url,
      capabilities: ["script"],
      maxConcurrency: 4,
      token: "wh-token",
    });
  }, 180_000);
  afterAll(async () => {
    await s?.stop();
    await worker?.stop();
    await rx?.stop();
  }, 60_000);

  const deliveriesOf = async (endpointId: string) =>
    (await s.http.webhooks.deliveries.query({ endpointId, limit: 200 })).items;

  const create = async (name: string, events: WebhookEventType[], script: Behaviour[] = [], format?: "slack") => {
    const path = `/hooks/${name}`;
    const made = await s.http.webhooks.create.mutate({
      name,
      url: `${rx.url}${path}`,
      events,
      ...(format ? { format } : {}),
    });
    rx.on(path, made.secret, script);
    return { ...made, path };
  };

  it("shows the secret once, stores it sealed, never returns it again, and audits without it", async () => {
    const { endpoint, secret } = await create("sealed", ["task.failed"]);
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const [row] = await s.db.query<{ secret: string }>(`SELECT secret FROM webhook_endpoints WHERE id = $1`, [
      endpoint.id,
    ]);
    expect(isSealed(row?.secret ?? "")).toBe(true);
    expect(row?.secret).not.toContain(secret.slice(6));
    const everything = JSON.stringify([
      await s.http.webhooks.list.query(),
      await s.http.webhooks.get.query({ id: endpoint.id }),
      await s.http.audit.list.query({ resourceType: "webhook" }),
    ]);
    expect(everything).toContain(endpoint.id);
    expect(everything).not.toContain(secret.slice(6, 30));
    expect(everything).not.toContain("whsec_");
    const rotated = await s.http.webhooks.rotateSecret.mutate({ id: endpoint.id });
    expect(rotated.secret).toMatch(/^whsec_/);
    expect(rotated.secret).not.toBe(secret);
    const actions = (await s.http.audit.list.query({ resourceType: "webhook", resourceId: endpoint.id })).items.map(
      (a) => a.action,
    );
    expect(actions).toEqual(["webhook.rotate_secret", "webhook.create"]);
    await s.http.webhooks.remove.mutate({ id: endpoint.id });
  });

  it("refuses a URL outside the outbound allowlist and bad input with a clear 400, creating nothing", async () => {
    const before = (await s.http.webhooks.list.query()).length;
    const refused = await s.http.webhooks.create
      .mutate({ name: "outside", url: "https://hooks.example.net/x", events: ["task.failed"] })
      .catch((e: unknown) => e);
    expect(codeOf(refused)).toBe("BAD_REQUEST");
    expect((refused as Error).message).toMatch(/Webhook host "hooks\.example\.net" is not in WORKER_ALLOWED_HOSTS/);
    const noEvents = await s.http.webhooks.create
      .mutate({ name: "none", url: `${rx.url}/x`, events: [] })
      .catch((e: unknown) => e);
    expect(codeOf(noEvents)).toBe("BAD_REQUEST");
    expect((noEvents as Error).message).toMatch(/Choose at least one event/);
    const badEvent = await s.http.webhooks.create
      .mutate({ name: "bad", url: `${rx.url}/x`, events: ["task.exploded" as WebhookEventType] })
      .catch((e: unknown) => e);
    expect(codeOf(badEvent)).toBe("BAD_REQUEST");
    const creds = await s.http.webhooks.create
      .mutate({ name: "creds", url: "http://user:pw@127.0.0.1/x", events: ["task.failed"] })
      .catch((e: unknown) => e);
    expect((creds as Error).message).toMatch(/Webhook URL must not contain credentials/);
    expect((await s.http.webhooks.list.query()).length).toBe(before);
  });

  it("delivers each task event of real runs, signed, with the task and a console link", async () => {
    const hook = await create("tasks", [
      "task.accepted",
      "task.failed",
      "task.rejected",
      "task.changes_requested",
      "task.awaiting_approval",
    ]);
    const ok = await s.http.tasks.create.mutate({
      title: "Webhook accepted",
      mode: "feature",
      input: { script: "echo hi > hi.txt" },
      acceptanceCriteria: [{ text: "hi exists", check: { kind: "command", command: "test -f hi.txt" } }],
    });
    const failing = await s.http.tasks.create.mutate({
      title: "Webhook failed",
      input: { script: "echo nope >&2; exit 3" },
    });
    const unmet = await s.http.tasks.create.mutate({
      title: "Webhook unmet criteria",
      mode: "feature",
      input: { script: "echo hi > hi.txt" },
      acceptanceCriteria: [{ text: "missing exists", check: { kind: "command", command: "test -f missing.txt" } }],
    });
    const settledState = async (id: string) =>
      (
        await waitFor(
          `task ${id} to settle`,
          () => s.http.tasks.get.query({ id }),
          (t) => t.state in TASK_STATE_EVENTS,
          60_000,
        )
      ).state;
    const states = {
      [ok.id]: await settledState(ok.id),
      [failing.id]: await settledState(failing.id),
      [unmet.id]: await settledState(unmet.id),
    };
    expect(states[failing.id]).toBe("failed");
    expect(["rejected", "changes_requested"]).toContain(states[unmet.id]);
    expect(["accepted", "awaiting_approval"]).toContain(states[ok.id]);

    // At least once: a try that timed out on a slow machine may have arrived too, so wait for each task's event.
    const got = await waitFor(
      "a delivery for each task",
      async () => rx.at(hook.path),
      (r) => Object.keys(states).every((id) => r.some((x) => x.body.includes(id))),
    );
    expect(got.every((r) => r.verified)).toBe(true);
    const bodies = got.map(
      (r) => JSON.parse(r.body) as { type: string; timestamp: string; data: Record<string, unknown> },
    );
    for (const [id, state] of Object.entries(states)) {
      const b = bodies.find((x) => x.data.taskId === id);
      expect(b?.type).toBe(TASK_STATE_EVENTS[state]);
      expect(b?.data).toMatchObject({ state, url: `https://agency.example.com/tasks/${id}` });
      expect(typeof b?.data.title).toBe("string");
      expect(Number.isNaN(Date.parse(b?.timestamp ?? ""))).toBe(false);
    }
    expect(bodies.find((x) => x.data.taskId === failing.id)?.data.reason).toMatch(/exited with code 3/);
    // Each event once, however many passes ran: one delivery per (endpoint, event).
    const ds = await waitFor(
      "the deliveries recorded",
      () => deliveriesOf(hook.endpoint.id),
      (d) => d.length >= 3 && d.every((x) => x.status === "delivered" && x.responseStatus === 200),
    );
    expect(new Set(ds.map((d) => d.eventId)).size).toBe(ds.length);
    await s.http.webhooks.update.mutate({ id: hook.endpoint.id, patch: { enabled: false } });
  }, 120_000);

  it("a receiver rejects a tampered body: the signature covers id, timestamp and body", async () => {
    const hook = await create("tamper", ["task.failed"]);
    await s.http.webhooks.sendTest.mutate({ id: hook.endpoint.id });
    const [first] = await waitFor(
      "the test event",
      async () => rx.at(hook.path),
      (r) => r.length === 1,
    );
    expect(first?.verified).toBe(true);
    const headers = {
      "content-type": "application/json",
      "webhook-id": String(first?.headers["webhook-id"]),
      "webhook-timestamp": String(first?.headers["webhook-timestamp"]),
      "webhook-signature": String(first?.headers["webhook-signature"]),
    };
    const tampered = (first?.body ?? "").replace("webhook.test", "task.failed");
    const res = await fetch(`${rx.url}${hook.path}`, { method: "POST", headers, body: tampered });
    expect(res.status).toBe(401);
    const replayedAsIs = await fetch(`${rx.url}${hook.path}`, { method: "POST", headers, body: first?.body });
    expect(replayedAsIs.status).toBe(200);
  });

  it("retries after a 500 with backoff, then records the 200 and the tries", async () => {
    const hook = await create("flaky", ["task.failed"], [{ status: 500, body: "database is down" }, { status: 200 }]);
    const test = await s.http.webhooks.sendTest.mutate({ id: hook.endpoint.id });
    const done = await waitFor(
      "the retried delivery",
      async () => (await deliveriesOf(hook.endpoint.id)).find((d) => d.id === test.id),
      (d) => d?.status === "delivered",
    );
    expect(done).toMatchObject({ attempts: 2, responseStatus: 200, error: null, nextAttemptAt: null });
    expect(done?.durationMs).toBeGreaterThanOrEqual(0);
    const tries = rx.at(hook.path);
    expect(tries).toHaveLength(2);
    expect(tries.every((r) => r.verified)).toBe(true);
    expect(new Set(tries.map((r) => r.headers["webhook-id"])).size).toBe(1);
  });

  it("waits as long as Retry-After asks before the next try", async () => {
    const hook = await create("busy", ["task.failed"], [{ status: 429, headers: { "retry-after": "1" } }]);
    const test = await s.http.webhooks.sendTest.mutate({ id: hook.endpoint.id });
    await waitFor(
      "the delivery after Retry-After",
      async () => (await deliveriesOf(hook.endpoint.id)).find((d) => d.id === test.id),
      (d) => d?.status === "delivered",
    );
    const [a, b] = rx.at(hook.path);
    // The backoff alone would be at most WEBHOOK_RETRY_MAX_DELAY_MS (200 ms).
    expect((b?.at ?? 0) - (a?.at ?? 0)).toBeGreaterThanOrEqual(950);
  });

  it("gives up on a receiver that never answers after WEBHOOK_MAX_ATTEMPTS timed-out tries", async () => {
    const hook = await create("hanging", ["task.failed"], ["hang", "hang", "hang"]);
    const test = await s.http.webhooks.sendTest.mutate({ id: hook.endpoint.id });
    const failed = await waitFor(
      "the delivery to fail",
      async () => (await deliveriesOf(hook.endpoint.id)).find((d) => d.id === test.id),
      (d) => d?.status === "failed",
    );
    expect(failed).toMatchObject({ attempts: 3, responseStatus: null, nextAttemptAt: null });
    expect(failed?.error).toMatch(/No answer within 1000 ms.*gave up after 3 tries/);
    expect(failed?.durationMs).toBeGreaterThanOrEqual(950);
    expect(rx.at(hook.path)).toHaveLength(3);
  });

  it("disables the endpoint on 410 Gone; enabling it again clears the reason", async () => {
    const hook = await create("gone", ["task.failed"], [{ status: 410, body: "no such hook" }]);
    const test = await s.http.webhooks.sendTest.mutate({ id: hook.endpoint.id });
    const d = await waitFor(
      "the 410",
      async () => (await deliveriesOf(hook.endpoint.id)).find((x) => x.id === test.id),
      (x) => x?.status === "failed",
    );
    expect(d).toMatchObject({ attempts: 1, responseStatus: 410, responseBody: "no such hook" });
    const e = await s.http.webhooks.get.query({ id: hook.endpoint.id });
    expect(e.enabled).toBe(false);
    expect(e.disabledReason).toMatch(/410 Gone/);
    const again = await s.http.webhooks.update.mutate({ id: hook.endpoint.id, patch: { enabled: true } });
    expect(again).toMatchObject({ enabled: true, disabledReason: null });
  });

  it("replays a delivery as a new one with the same webhook-id, audited", async () => {
    const hook = await create("replay", ["task.failed"]);
    const test = await s.http.webhooks.sendTest.mutate({ id: hook.endpoint.id });
    await waitFor(
      "the first delivery",
      async () => (await deliveriesOf(hook.endpoint.id)).find((x) => x.id === test.id),
      (x) => x?.status === "delivered",
    );
    const replay = await s.http.webhooks.replay.mutate({ deliveryId: test.id });
    expect(replay).toMatchObject({ replayOf: test.id, eventId: test.eventId });
    expect(replay.id).not.toBe(test.id);
    await waitFor(
      "the replay",
      async () => (await deliveriesOf(hook.endpoint.id)).find((x) => x.id === replay.id),
      (x) => x?.status === "delivered",
    );
    const got = rx.at(hook.path);
    expect(got).toHaveLength(2);
    expect(got[1]?.headers["webhook-id"]).toBe(got[0]?.headers["webhook-id"]);
    expect(got[1]?.body).toBe(got[0]?.body);
    const audit = await s.http.audit.list.query({ action: "webhook.replay", resourceId: hook.endpoint.id });
    expect(audit.items[0]?.after).toMatchObject({ delivery: test.id, replay: replay.id });
    const missing = await s.http.webhooks.replay
      .mutate({ deliveryId: "00000000-0000-4000-8000-000000000000" })
      .catch((e: unknown) => e);
    expect(codeOf(missing)).toBe("NOT_FOUND");
  });

  it("sends a Slack-compatible message to a slack endpoint", async () => {
    const hook = await create("slack", ["task.failed"], [], "slack");
    await s.http.webhooks.sendTest.mutate({ id: hook.endpoint.id });
    const [got] = await waitFor(
      "the Slack message",
      async () => rx.at(hook.path),
      (r) => r.length === 1,
    );
    const body = JSON.parse(got?.body ?? "{}") as { text: string; blocks: { type: string }[] };
    expect(body.text).toBe("Test event: endpoint slack");
    expect(body.blocks.map((b) => b.type)).toEqual(["section", "context"]);
  });

  it("delivers worker events: breaker opened and closed, worker down", async () => {
    const hook = await create("workers", ["worker.breaker_opened", "worker.breaker_closed", "worker.down"]);
    const [ref] = await s.http.workers.list.query();
    await s.http.workers.trip.mutate({ id: ref?.id ?? "", reason: "webhook test: opening the breaker" });
    await s.http.workers.reset.mutate({ id: ref?.id ?? "" });
    const dead = await s.http.workers.register.mutate({
      name: "gone-worker",
      url: await deadWorkerUrl(),
      capabilities: ["nothing"],
    });
    const got = await waitFor(
      "three worker events",
      async () => rx.at(hook.path).map((r) => JSON.parse(r.body) as { type: string; data: Record<string, unknown> }),
      (r) =>
        ["worker.breaker_opened", "worker.breaker_closed", "worker.down"].every((t) => r.some((x) => x.type === t)),
    );
    expect(got.find((x) => x.type === "worker.breaker_opened")?.data).toMatchObject({
      workerId: ref?.id,
      worker: "reference",
      url: "https://agency.example.com/workers",
    });
    expect(got.find((x) => x.type === "worker.down")?.data).toMatchObject({ workerId: dead.id, worker: "gone-worker" });
    await s.http.workers.remove.mutate({ id: dead.id });
  });

  it("delivers provenance.verification_failed when a verification finds the log not intact", async () => {
    const hook = await create("provenance", ["provenance.verification_failed"]);
    expect((await s.http.provenance.verify.query()).ok).toBe(true);
    await s.db.exec(
      `ALTER TABLE provenance_records DISABLE TRIGGER provenance_records_no_update_or_delete;
       UPDATE provenance_records SET payload = '{"forged": true}' WHERE seq = 2;
       ALTER TABLE provenance_records ENABLE TRIGGER provenance_records_no_update_or_delete`,
    );
    expect((await s.http.provenance.verify.query()).ok).toBe(false);
    const [got] = await waitFor(
      "the provenance event",
      async () => rx.at(hook.path),
      (r) => r.length === 1,
    );
    const body = JSON.parse(got?.body ?? "{}") as { type: string; data: { reason: string } };
    expect(body.type).toBe("provenance.verification_failed");
    expect(body.data.reason).toMatch(/at record 2/);
  });

  it("two processes claiming at once never take the same delivery (SKIP LOCKED)", async () => {
    const hook = await create("claims", ["task.failed"]);
    await s.http.webhooks.update.mutate({ id: hook.endpoint.id, patch: { enabled: false } });
    for (let i = 0; i < 12; i++) await s.http.webhooks.sendTest.mutate({ id: hook.endpoint.id });
    await s.db.query(`UPDATE webhook_endpoints SET enabled = true WHERE id = $1`, [hook.endpoint.id]);
    // The server's own delivery loop claims too: three claimers, and each row goes to one of them.
    const [a, b] = await Promise.all([claimDue(s.db, "proc-a", 60_000, 12), claimDue(s.db, "proc-b", 60_000, 12)]);
    const held = [...a, ...b].map((c) => c.id);
    expect(new Set(held).size).toBe(held.length);
    const sent = await waitFor(
      "the loop to send the rest",
      async () => (await deliveriesOf(hook.endpoint.id)).filter((d) => d.status === "delivered"),
      (d) => d.length === 12 - held.length,
    );
    expect(sent.some((d) => held.includes(d.id))).toBe(false);
    expect(rx.at(hook.path)).toHaveLength(12 - held.length);
    await s.http.webhooks.remove.mutate({ id: hook.endpoint.id });
  });

  it("counts deliveries by outcome in /metrics", async () => {
    const res = await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    const text = await res.text();
    expect(text).toMatch(/agency_webhook_deliveries_total\{outcome="delivered"\} [1-9]/);
    expect(text).toMatch(/agency_webhook_deliveries_total\{outcome="retrying"\} [1-9]/);
    expect(text).toMatch(/agency_webhook_deliveries_total\{outcome="disabled"\} 1/);
  });

  it("refuses viewers and operators", async () => {
    for (const role of ["viewer", "operator"] as const) {
      const token = await tokenFor(s.services, `wh-${role}`, role);
      const as = createTRPCClient<AppRouter>({
        links: [
          httpBatchLink({
            url: `${s.url}/trpc`,
            transformer: superjson,
            headers: { authorization: `Bearer ${token}` },
          }),
        ],
      });
      expect(codeOf(await as.webhooks.list.query().catch((e: unknown) => e))).toBe("FORBIDDEN");
      expect(
        codeOf(
          await as.webhooks.create
            .mutate({ name: "nope", url: `${rx.url}/nope`, events: ["task.failed"] })
            .catch((e: unknown) => e),
        ),
      ).toBe("FORBIDDEN");
    }
    expect((await s.http.webhooks.list.query()).some((e) => e.name === "nope")).toBe(false);
  });
});

describe.each(DATABASES)("webhook deliveries across a restart on %s", (kind) => {
  it("new services on the same database deliver what a stopped or dead process left", async () => {
    const rx = new Receiver();
    await rx.start();
    const db = await freshDatabase(kind);
    const env = { ...FAST_ENV, ...WEBHOOK_ENV, WEB_DIST_DIR: "/nonexistent" };
    try {
      // The first process accepts two deliveries and dies before sending them: one never claimed,
      // one claimed (by the real claim statement) with a lease that runs out.
      const first = await createServices(db, silentLog, testConfig(env));
      const admin = { actor: { kind: "user" as const, id: "admin", name: "admin", role: "admin" as const } };
      const { endpoint, secret } = await first.webhooks.create(admin, {
        name: "restart",
        url: `${rx.url}/hooks/restart`,
        events: ["task.failed"],
        format: "standard",
      });
      rx.on("/hooks/restart", secret);
      const pending = await first.webhooks.sendTest(admin, endpoint.id);
      const [claimed] = await claimDue(db, "dead-process", 1, 1);
      expect(claimed?.id).toBe(pending.id);
      const second = await first.webhooks.sendTest(admin, endpoint.id);
      await first.stop();
      expect(rx.received).toHaveLength(0);

      const next = await createServices(db, silentLog, testConfig(env));
      await next.start();
      try {
        const done = await waitFor(
          "both deliveries",
          async () => (await next.webhooks.deliveries({ endpointId: endpoint.id, limit: 10 })).items,
          (items) => items.length === 2 && items.every((d) => d.status === "delivered"),
        );
        expect(done.find((d) => d.id === pending.id)?.attempts).toBe(2);
        expect(done.find((d) => d.id === second.id)?.attempts).toBe(1);
        expect(rx.received).toHaveLength(2);
        expect(rx.received.every((r) => r.verified)).toBe(true);
      } finally {
        await next.stop();
      }
    } finally {
      await db.dispose();
      await rx.stop();
    }
  }, 180_000);
});

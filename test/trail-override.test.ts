import { createTRPCClient, httpBatchLink } from "@trpc/client";
import superjson from "superjson";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AppRouter } from "../src/server/router.js";
import type { AuditEntryDto } from "../src/shared/audit.js";
import { DATABASES } from "./helpers/databases.js";
import { ADMIN_TOKEN, type EngineApp, startEngineApp, waitFor } from "./helpers/fault-worker.js";
import { tokenFor } from "./helpers/server.js";
import { withEvents } from "./helpers/task-events.js";
import { type ReferenceWorkerProcess, startReferenceWorkerProcess } from "./helpers/worker.js";

const WORKER_TOKEN = "override-reference-token-7a3e9c1b2d";
const USER_AGENT = "override-test/1.0";
const JUSTIFICATION = "The TODO is in a generated stub that the release process replaces.";

describe.each(DATABASES)("admin verdict override on %s", (kind) => {
  let s: EngineApp;
  let worker: ReferenceWorkerProcess;
  let api: ReturnType<typeof createTRPCClient<AppRouter>>;
  let operator: ReturnType<typeof createTRPCClient<AppRouter>>;
  let judgedId: string;

  const client = (token: string) =>
    createTRPCClient<AppRouter>({
      links: [
        httpBatchLink({
          url: `${s.url}/trpc`,
          transformer: superjson,
          headers: { authorization: `Bearer ${token}`, "user-agent": USER_AGENT },
        }),
      ],
    });

  beforeAll(async () => {
    worker = await startReferenceWorkerProcess({ env: { WORKER_TOKEN, WORKER_MAX_CONCURRENCY: "4" } });
    // No automatic re-dispatch: the first changes_requested verdict is the one to override.
    s = await startEngineApp(kind, { MAX_AUTO_REDISPATCH: "0" });
    api = client(ADMIN_TOKEN);
    operator = client(await tokenFor(s.services, "override-operator", "operator"));
    await api.workers.register.mutate({
      name: "reference",
      url: worker.url,
      capabilities: ["script"],
      maxConcurrency: 4,
      token: WORKER_TOKEN,
    });
    // A placeholder left in the code: the council asks for changes.
    const created = await api.tasks.create.mutate({
      title: "Leave a placeholder",
      mode: "feature",
      input: { script: "printf 'def run():\\n    # TODO: implement\\n    pass\\n' > run.py" },
    });
    judgedId = created.id;
    await waitFor(
      "the council to settle on changes_requested",
      () => withEvents(api, { id: judgedId }),
      (t) => t.state === "changes_requested",
    );
  });
  afterAll(async () => {
    await s?.stop();
    await worker?.stop();
  });

  const auditOf = async (resourceId: string): Promise<AuditEntryDto[]> =>
    [...(await api.audit.list.query({ resourceId, limit: 200 })).items].reverse();
  const chainOf = async (taskId: string) =>
    [...(await api.provenance.list.query({ taskId, limit: 200 })).items].reverse();

  it("refuses a missing or short justification, an operator and the same verdict, changing nothing", async () => {
    const before = await withEvents(api, { id: judgedId });
    const auditBefore = (await auditOf(judgedId)).length;
    const chainBefore = (await chainOf(judgedId)).length;

    await expect(
      api.tasks.override.mutate({ id: judgedId, verdict: "accept", justification: "   ok    " }),
    ).rejects.toMatchObject({ data: { code: "BAD_REQUEST" }, message: expect.stringContaining("at least 10") });
    await expect(
      // @ts-expect-error: the justification is required; the server must say so, not only the types.
      api.tasks.override.mutate({ id: judgedId, verdict: "accept" }),
    ).rejects.toMatchObject({ data: { code: "BAD_REQUEST" }, message: expect.stringContaining("justification") });
    await expect(
      api.tasks.override.mutate({ id: judgedId, verdict: "accept", justification: "x".repeat(2001) }),
    ).rejects.toMatchObject({ data: { code: "BAD_REQUEST" }, message: expect.stringContaining("at most 2000") });
    await expect(
      api.tasks.override.mutate({ id: judgedId, verdict: "changes_requested", justification: JUSTIFICATION }),
    ).rejects.toMatchObject({
      data: { code: "BAD_REQUEST" },
      message: expect.stringContaining("already changes_requested"),
    });
    await expect(
      operator.tasks.override.mutate({ id: judgedId, verdict: "accept", justification: JUSTIFICATION }),
    ).rejects.toMatchObject({ data: { code: "FORBIDDEN" } });

    const after = await withEvents(api, { id: judgedId });
    expect(after.state).toBe("changes_requested");
    expect(after.events).toHaveLength(before.events.length);
    expect(after.verdict?.override).toBeUndefined();
    expect(await auditOf(judgedId)).toHaveLength(auditBefore);
    expect(await chainOf(judgedId)).toHaveLength(chainBefore);
  });

  it("an admin overrides changes_requested to accepted: audited, on the chain, on the judgement", async () => {
    const result = await api.tasks.override.mutate({
      id: judgedId,
      verdict: "accept",
      justification: `  ${JUSTIFICATION}  `,
    });
    expect(result).toMatchObject({ state: "accepted", stateReason: JUSTIFICATION });

    const t = await withEvents(api, { id: judgedId });
    expect(t.state).toBe("accepted");
    // The council's own verdict stays as it was; the override sits beside it.
    expect(t.verdict).toMatchObject({
      attempt: 1,
      verdict: "changes_requested",
      override: { by: "admin", from: "changes_requested", to: "accepted", justification: JUSTIFICATION },
    });
    expect(Number.isNaN(Date.parse(t.verdict?.override?.at ?? ""))).toBe(false);
    expect(t.events.at(-1)).toMatchObject({
      type: "state_changed",
      fromState: "changes_requested",
      toState: "accepted",
      actor: "admin",
      data: { reason: JUSTIFICATION, verdict: "accept" },
    });

    const entry = (await auditOf(judgedId)).find((e) => e.action === "task.override");
    expect(entry).toMatchObject({
      actorKind: "token",
      actorId: "admin",
      userAgent: USER_AGENT,
      clientAddress: "127.0.0.1",
      before: { state: "changes_requested" },
      after: { state: "accepted", verdict: "accept", overridden: "changes_requested", reason: JUSTIFICATION },
    });

    const chain = await chainOf(judgedId);
    expect(chain.at(-1)).toMatchObject({
      kind: "task.override",
      payload: { by: "admin", from: "changes_requested", to: "accepted", justification: JUSTIFICATION },
    });
    expect(await api.provenance.verify.query()).toMatchObject({ ok: true, firstBad: null });

    // A second override goes on from the new state; the judgement keeps the latest, the trail keeps both.
    await api.tasks.override.mutate({ id: judgedId, verdict: "reject", justification: "Reverted after review." });
    const again = await withEvents(api, { id: judgedId });
    expect(again.state).toBe("rejected");
    expect(again.verdict?.override).toMatchObject({ from: "accepted", to: "rejected" });
    expect((await auditOf(judgedId)).filter((e) => e.action === "task.override")).toHaveLength(2);
    expect((await chainOf(judgedId)).filter((r) => r.kind === "task.override")).toHaveLength(2);
    expect(await api.provenance.verify.query()).toMatchObject({ ok: true });
  });

  it("refuses to override a queued task, naming its state", async () => {
    // No worker offers this capability, so the task stays queued.
    const queued = await api.tasks.create.mutate({
      title: "Wait for a worker",
      capability: "no-such-capability",
      input: { script: "true" },
    });
    await expect(
      api.tasks.override.mutate({ id: queued.id, verdict: "accept", justification: JUSTIFICATION }),
    ).rejects.toMatchObject({ data: { code: "BAD_REQUEST" }, message: expect.stringContaining("this task is queued") });
    const t = await withEvents(api, { id: queued.id });
    expect(t.state).toBe("queued");
    expect(t.events.map((e) => e.type)).toEqual(["created"]);
    expect((await auditOf(queued.id)).map((e) => e.action)).toEqual(["task.create"]);
  });
});

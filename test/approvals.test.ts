import { createTRPCClient, httpBatchLink, TRPCClientError } from "@trpc/client";
import superjson from "superjson";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { helpText, parseMessage } from "../src/server/chat/commands.js";
import { loadConfig } from "../src/server/config.js";
import { verifyRows } from "../src/server/provenance/rows.js";
import type { AppRouter } from "../src/server/router.js";
import { TRANSITIONS } from "../src/shared/task-state.js";
import { DATABASES } from "./helpers/databases.js";
import { ADMIN_TOKEN, type EngineApp, startEngineApp, waitFor } from "./helpers/fault-worker.js";
import { tokenFor } from "./helpers/server.js";
import { withEvents } from "./helpers/task-events.js";
import { type ReferenceWorkerProcess, startReferenceWorkerProcess } from "./helpers/worker.js";

const TOKEN = "approvals-reference-token";
type Client = ReturnType<typeof createTRPCClient<AppRouter>>;

/** The tRPC error code of a rejected call. */
async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "resolved";
  } catch (err) {
    if (err instanceof TRPCClientError) return (err.data as { code?: string } | undefined)?.code ?? "unknown";
    throw err;
  }
}
async function messageOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "resolved";
  } catch (err) {
    return (err as Error).message;
  }
}

describe("APPROVAL_POLICY", () => {
  it("defaults to tier 1 needing an operator other than the creator, tiers 2 and 3 not", () => {
    expect(loadConfig({}).approvalPolicy).toEqual({
      1: { required: true, approver: "operator", fourEyes: true },
      2: { required: false, approver: "operator", fourEyes: false },
      3: { required: false, approver: "operator", fourEyes: false },
    });
  });

  it("merges a tier's given parts over its defaults", () => {
    const p = loadConfig({ APPROVAL_POLICY: '{"1":{"approver":"admin"},"3":{"required":true}}' }).approvalPolicy;
    expect(p[1]).toEqual({ required: true, approver: "admin", fourEyes: true });
    expect(p[3]).toEqual({ required: true, approver: "operator", fourEyes: false });
  });

  it("names the field of a bad value", () => {
    expect(() => loadConfig({ APPROVAL_POLICY: "{nope" })).toThrow(/APPROVAL_POLICY: must be a JSON object/);
    expect(() => loadConfig({ APPROVAL_POLICY: '{"1":{"approver":"boss"}}' })).toThrow(
      /APPROVAL_POLICY\.1\.approver: must be "operator" or "admin"/,
    );
    expect(() => loadConfig({ APPROVAL_POLICY: '{"2":{"required":"yes"}}' })).toThrow(
      /APPROVAL_POLICY\.2\.required: must be true or false/,
    );
    expect(() => loadConfig({ APPROVAL_POLICY: '{"4":{}}' })).toThrow(/APPROVAL_POLICY/);
    expect(() => loadConfig({ APPROVAL_POLICY: '{"1":{"fourEyez":true}}' })).toThrow(/APPROVAL_POLICY\.1/);
  });

  it("is in the transition table: verdict to awaiting_approval, approve, reject and cancel from it", () => {
    const from = TRANSITIONS.filter((t) => t.from === "awaiting_approval").map((t) => [t.to, t.name, t.by.join("|")]);
    expect(from).toEqual([
      ["accepted", "approve", "operator|admin"],
      ["rejected", "reject", "operator|admin"],
      ["canceling", "cancel", "operator|admin"],
    ]);
    expect(TRANSITIONS.find((t) => t.to === "awaiting_approval")).toMatchObject({
      from: "running",
      name: "verdict",
      by: ["system"],
    });
  });
});

describe("chat /approve and /reject parsing", () => {
  it("reads the id and the note, and requires a note to reject", () => {
    expect(parseMessage("/approve 7B0A8F5E looks right")).toEqual({
      kind: "command",
      command: { name: "approve", ref: "7b0a8f5e", note: "looks right" },
    });
    expect(parseMessage("/approve 7b0a8f5e")).toEqual({
      kind: "command",
      command: { name: "approve", ref: "7b0a8f5e", note: null },
    });
    expect(parseMessage("/reject 7b0a8f5e7a51 touches the billing code")).toEqual({
      kind: "command",
      command: { name: "reject", ref: "7b0a8f5e7a51", note: "touches the billing code" },
    });
    const error = (s: string) => {
      const p = parseMessage(s);
      return p.kind === "invalid" ? p.error : `parsed as ${p.kind}`;
    };
    expect(error("/reject 7b0a8f5e")).toMatch(/^Give a note: say why the attempt is rejected\. Usage: \/reject/);
    expect(error("/approve")).toBe("Usage: /approve <task id> [note]");
    expect(error("/reject abc why")).toMatch(/"abc" is not a task id/);
    expect(error(`/approve 7b0a8f5e ${"x".repeat(2001)}`)).toMatch(/at most 2000 characters/);
    expect(helpText()).toContain("/approve <task id> [note]");
    expect(helpText()).toContain("/reject <task id> <note>");
  });
});

describe.each(DATABASES)("approval by risk tier on %s", (kind) => {
  let s: EngineApp;
  let worker: ReferenceWorkerProcess;
  let alice: Client;
  let bob: Client;
  let viewer: Client;
  const as = (token: string): Client =>
    createTRPCClient<AppRouter>({
      links: [
        httpBatchLink({ url: `${s.url}/trpc`, transformer: superjson, headers: { authorization: `Bearer ${token}` } }),
      ],
    });

  beforeAll(async () => {
    worker = await startReferenceWorkerProcess({ env: { WORKER_TOKEN: TOKEN, WORKER_MAX_CONCURRENCY: "4" } });
    // Tier 1 as by default; tier 3 decided by an admin only, without four eyes.
    s = await startEngineApp(kind, {
      APPROVAL_POLICY: JSON.stringify({ 3: { required: true, approver: "admin", fourEyes: false } }),
    });
    await s.http.workers.register.mutate({
      name: "reference",
      url: worker.url,
      capabilities: ["script"],
      maxConcurrency: 4,
      token: TOKEN,
    });
    alice = as(await tokenFor(s.services, "alice", "operator"));
    bob = as(await tokenFor(s.services, "bob", "operator"));
    viewer = as(await tokenFor(s.services, "vera", "viewer"));
  });
  afterAll(async () => {
    await s?.stop();
    await worker?.stop();
  });

  /** A task the council accepts (a file and a passing check), created by `client` at `riskTier`. */
  const accepted = async (client: Client, title: string, riskTier: 1 | 2 | 3) => {
    const t = await client.tasks.create.mutate({
      title,
      mode: "feature",
      riskTier,
      input: { script: `printf 'hello\\n' > out.txt` },
      acceptanceCriteria: [{ text: "out.txt exists", check: { kind: "command", command: "test -f out.txt" } }],
    });
    return waitFor(
      `task ${t.id} to be judged`,
      () => withEvents(s.http, { id: t.id }),
      (x) => x.state !== "queued" && x.state !== "running",
    );
  };
  const stateOf = async (id: string) => (await s.http.tasks.get.query({ id })).state;
  const auditOf = async (id: string) =>
    (await s.http.audit.list.query({ resourceType: "task", resourceId: id, limit: 100 })).items;

  it("holds a tier 1 task the council accepted, lists it, and lets another operator approve it", async () => {
    const t = await accepted(alice, "Tier one greeting", 1);
    expect(t.state).toBe("awaiting_approval");
    expect(t.verdict?.verdict).toBe("accept");
    expect(t.artifacts.map((a) => a.path)).toEqual(["out.txt"]);
    const path = t.events.filter((e) => e.type === "state_changed").map((e) => e.toState);
    expect(path).toEqual(["running", "awaiting_approval"]);
    expect(t.events.at(-1)?.data).toMatchObject({ name: "verdict", verdict: "accept", awaitingApproval: true });

    // The queue: oldest first, with why each caller may not decide.
    const forAlice = await alice.tasks.approvalQueue.query();
    const row = forAlice.items.find((x) => x.id === t.id);
    expect(row).toMatchObject({ riskTier: 1, createdBy: "alice", policy: { required: true, fourEyes: true } });
    expect(row?.refusal).toMatch(/^Four eyes: you created this task/);
    expect((await bob.tasks.approvalQueue.query()).items.find((x) => x.id === t.id)?.refusal).toBeNull();
    expect((await viewer.tasks.approvalPermission.query({ id: t.id })).refusal).toMatch(/operator role/);
    // tasks.list filters by the new state like any other.
    const listed = await s.http.tasks.list.query({ filter: { states: ["awaiting_approval"] } });
    expect(listed.items.map((x) => x.id)).toContain(t.id);

    // Four eyes: the creator is refused, and nothing changes.
    const refused = messageOf(alice.tasks.approve.mutate({ id: t.id }));
    expect(await refused).toMatch(/Four eyes: you created this task/);
    expect(await codeOf(alice.tasks.approve.mutate({ id: t.id }))).toBe("FORBIDDEN");
    expect(await codeOf(alice.tasks.reject.mutate({ id: t.id, note: "mine" }))).toBe("FORBIDDEN");
    expect(await codeOf(viewer.tasks.approve.mutate({ id: t.id }))).toBe("FORBIDDEN");
    expect(await stateOf(t.id)).toBe("awaiting_approval");

    const done = await bob.tasks.approve.mutate({ id: t.id, note: "  Checked the diff.  " });
    expect(done).toMatchObject({ id: t.id, state: "accepted" });
    expect(done.waitedMs).toBeGreaterThanOrEqual(0);
    const after = await withEvents(s.http, { id: t.id });
    expect(after.state).toBe("accepted");
    expect(after.stateReason).toBe("Approved by bob: Checked the diff.");
    expect(after.events.at(-1)).toMatchObject({
      fromState: "awaiting_approval",
      toState: "accepted",
      actor: "bob",
      data: { name: "approve", decision: "approve", note: "Checked the diff." },
    });
    const audit = (await auditOf(t.id)).find((e) => e.action === "task.approve");
    expect(audit).toMatchObject({
      actorId: "bob",
      before: { state: "awaiting_approval" },
      after: { state: "accepted", note: "Checked the diff." },
    });
    const records = (await s.http.provenance.list.query({ taskId: t.id })).items;
    expect(records.find((r) => r.kind === "task.approve")?.payload).toMatchObject({
      by: "bob",
      note: "Checked the diff.",
      attempt: 1,
      approver: "operator",
      fourEyes: true,
    });
    // Decided once: a second decision finds it accepted.
    const again = messageOf(bob.tasks.reject.mutate({ id: t.id, note: "changed my mind" }));
    expect(await again).toMatch(/is accepted, not awaiting_approval/);
    expect(await codeOf(bob.tasks.approve.mutate({ id: t.id }))).toBe("CONFLICT");
  });

  it("rejects with a required note; bad input is refused and changes nothing", async () => {
    const t = await accepted(alice, "Tier one to reject", 1);
    expect(t.state).toBe("awaiting_approval");
    const before = (await auditOf(t.id)).length;
    for (const bad of [
      bob.tasks.reject.mutate({ id: t.id, note: "   " }),
      bob.tasks.reject.mutate({ id: t.id } as never),
      bob.tasks.reject.mutate({ id: t.id, note: "x".repeat(2001) }),
      bob.tasks.reject.mutate({ id: t.id, note: "nul \u0000 here" }),
      bob.tasks.approve.mutate({ id: t.id, note: "x".repeat(2001) }),
      bob.tasks.approve.mutate({ id: "not-a-uuid" }),
    ]) {
      expect(await codeOf(bad)).toBe("BAD_REQUEST");
    }
    expect(await messageOf(bob.tasks.reject.mutate({ id: t.id, note: " " }))).toMatch(/Give a note/);
    expect(await stateOf(t.id)).toBe("awaiting_approval");
    expect((await auditOf(t.id)).length).toBe(before);

    const done = await bob.tasks.reject.mutate({ id: t.id, note: "It writes outside the agreed scope." });
    expect(done.state).toBe("rejected");
    const after = await s.http.tasks.get.query({ id: t.id });
    expect(after.stateReason).toBe("Rejected at approval by bob: It writes outside the agreed scope.");
    expect((await auditOf(t.id)).find((e) => e.action === "task.reject")?.after).toMatchObject({
      state: "rejected",
      note: "It writes outside the agreed scope.",
    });
    const records = (await s.http.provenance.list.query({ taskId: t.id })).items;
    expect(records.find((r) => r.kind === "task.reject")?.payload).toMatchObject({
      by: "bob",
      note: "It writes outside the agreed scope.",
    });
    // A rejected task may be retried as any other: a new attempt that waits for approval again.
    await bob.tasks.retry.mutate({ id: t.id });
    const retried = await waitFor(
      "the retried attempt to be judged",
      () => s.http.tasks.get.query({ id: t.id }),
      (x) => x.attempts.length === 2 && x.state !== "queued" && x.state !== "running",
    );
    expect(retried.state).toBe("awaiting_approval");
    // Canceling a waiting task ends it at once: nothing runs.
    const canceled = await bob.tasks.cancel.mutate({ id: t.id, reason: "not needed" });
    expect(canceled).toMatchObject({ state: "canceled", cancelConfirmed: true });
  });

  it("a tier whose policy names an admin refuses an operator; tier 2 is accepted without approval", async () => {
    const t = await accepted(alice, "Tier three for an admin", 3);
    expect(t.state).toBe("awaiting_approval");
    expect(await messageOf(bob.tasks.approve.mutate({ id: t.id }))).toMatch(
      /Tier 3's policy lets only an admin approve or reject its tasks; you are operator/,
    );
    expect(await codeOf(alice.tasks.approve.mutate({ id: t.id }))).toBe("FORBIDDEN");
    expect(await stateOf(t.id)).toBe("awaiting_approval");
    expect(await s.http.tasks.approve.mutate({ id: t.id })).toMatchObject({ state: "accepted" });

    const two = await accepted(alice, "Tier two", 2);
    expect(two.state).toBe("accepted");
    expect(await messageOf(s.http.tasks.approve.mutate({ id: two.id }))).toMatch(
      new RegExp(`Task ${two.id} is accepted, not awaiting_approval`),
    );
    const queued = await s.http.tasks.create.mutate({ title: "No worker for this", capability: "nobody-has-this" });
    expect(await codeOf(bob.tasks.approve.mutate({ id: queued.id }))).toBe("CONFLICT");
    expect(await codeOf(bob.tasks.approve.mutate({ id: "00000000-0000-4000-8000-000000000000" }))).toBe("NOT_FOUND");
  });

  it("shows the policy beside the tier's timeouts", async () => {
    const tiers = await viewer.system.tierPolicies.query();
    expect(tiers.map((t) => [t.tier, t.approval])).toEqual([
      [1, { required: true, approver: "operator", fourEyes: true }],
      [2, { required: false, approver: "operator", fourEyes: false }],
      [3, { required: true, approver: "admin", fourEyes: false }],
    ]);
  });

  it("chat /approve and /reject decide by id prefix, as the sender", async () => {
    const one = await accepted(alice, "Approve from chat", 1);
    const two = await accepted(alice, "Reject from chat", 1);
    const bobToken = await tokenFor(s.services, "bob", "operator");
    const bobChat = as(bobToken);
    const { id: sessionId } = await bobChat.chat.sessions.create.mutate({ title: "Approvals" });
    const say = async (client: Client, content: string) => {
      await client.chat.send.mutate({ sessionId, content, clientId: `c${Math.random().toString(36).slice(2, 12)}` });
      await s.services.chat.idle();
      const items = (await s.http.chat.messages.query({ sessionId, limit: 200 })).items;
      return items.filter((m) => m.role === "assistant").at(-1)?.content ?? "";
    };
    // The creator is refused by four eyes, in words.
    expect(await say(alice, `/approve ${one.id.slice(0, 8)}`)).toMatch(/Could not do that: Four eyes/);
    expect(await say(bobChat, `/approve ${one.id.slice(0, 10)} fine by me`)).toMatch(
      new RegExp(`^Approved task ${one.id.slice(0, 8)} after .* awaiting approval: it is accepted\\.$`),
    );
    expect(await say(bobChat, `/reject ${two.id} wrong file name`)).toMatch(/^Rejected task .*: it is rejected\.$/);
    expect(await stateOf(one.id)).toBe("accepted");
    const rejected = await s.http.tasks.get.query({ id: two.id });
    expect(rejected).toMatchObject({ state: "rejected", stateReason: "Rejected at approval by bob: wrong file name" });
    expect(await say(bobChat, `/approve ${two.id.slice(0, 8)}`)).toMatch(/is rejected, not awaiting_approval/);
  });

  it("exports the waiting time and the count waiting now; the metrics page's figures", async () => {
    const waiting = await accepted(alice, "Still waiting", 1);
    expect(waiting.state).toBe("awaiting_approval");
    const snap = await waitFor(
      "the snapshot to count it",
      () => s.http.metrics.snapshot.query(),
      (m) => m.awaitingApproval >= 1,
    );
    expect(snap.oldestApprovalWaitMs).toBeGreaterThanOrEqual(0);
    const scrape = async () => {
      const res = await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      return res.text();
    };
    const body = await waitFor(
      "the approval wait histogram",
      scrape,
      (b) =>
        /agency_approval_wait_seconds_count\{decision="approve"\} [1-9]/.test(b) &&
        /agency_approval_wait_seconds_count\{decision="reject"\} [1-9]/.test(b),
    );
    expect(body).toMatch(/agency_tasks_awaiting_approval [1-9]/);
    expect(body).toMatch(/agency_approval_oldest_wait_seconds \d/);
  });

  it("every decision is on the provenance log and --rows passes on tasks that went through approval", async () => {
    const verified = await s.http.provenance.verify.query();
    expect(verified.ok).toBe(true);
    const report = await verifyRows(s.db);
    expect(report.findings).toEqual([]);
    expect(report.ok).toBe(true);
    const kinds = await s.db.query<{ kind: string; n: number }>(
      `SELECT kind, count(*)::int AS n FROM provenance_records WHERE kind IN ('task.approve', 'task.reject') GROUP BY kind`,
    );
    expect(Object.fromEntries(kinds.map((k) => [k.kind, Number(k.n)]))).toEqual({
      "task.approve": 3,
      "task.reject": 2,
    });
  });
});

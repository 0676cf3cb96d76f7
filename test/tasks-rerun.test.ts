import { TRPCClientError } from "@trpc/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DATABASES } from "./helpers/databases.js";
import { type RunningApp, startApp, tokenFor } from "./helpers/server.js";

/** The error a call ends with (its tRPC code and message), or a failure if it succeeded. */
async function refusal(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err, "the call should have been refused").toBeInstanceOf(TRPCClientError);
  const e = err as TRPCClientError<never>;
  return { code: String((e.data as { code?: string } | undefined)?.code), message: e.message };
}

describe.each(DATABASES)("tasks.rerun on %s", { timeout: 120_000 }, (kind) => {
  let s: RunningApp;
  let viewer: string;
  beforeAll(async () => {
    // No execution engine: tasks stay queued until canceled, which finishes them.
    s = await startApp(kind);
    viewer = await tokenFor(s.services, "rerun-viewer", "viewer");
  }, 180_000);
  afterAll(() => s?.stop());

  const finishedTask = async () => {
    const t = await s.http.tasks.create.mutate({
      title: "Original",
      description: "the first try",
      priority: "high",
      riskTier: 3,
      budget: { maxFiles: 2 },
      acceptanceCriteria: [{ text: "out exists", check: { kind: "command", command: "test -f out.txt" } }],
      input: { script: "echo one > out.txt" },
    });
    await s.http.tasks.cancel.mutate({ id: t.id, reason: "superseded" });
    return t;
  };
  const taskCount = async () => (await s.http.tasks.count.query({})).count;

  it("creates a queued task from a finished one's spec with the edits applied, linked both ways", async () => {
    const original = await finishedTask();
    const rerun = await s.http.tasks.rerun.mutate({
      id: original.id,
      edits: { title: "Original, again", input: { script: "echo two > out.txt" } },
    });
    expect(rerun.id).not.toBe(original.id);
    expect(rerun.state).toBe("queued");
    expect(rerun.createdBy).toBe(original.createdBy);
    // Edited fields replaced, the rest kept from the original.
    expect(rerun.spec).toMatchObject({
      title: "Original, again",
      description: "the first try",
      priority: "high",
      riskTier: 3,
      budget: { maxFiles: 2 },
      acceptanceCriteria: [{ text: "out exists", check: { kind: "command", command: "test -f out.txt" } }],
      input: { script: "echo two > out.txt" },
    });
    expect(rerun.rerunOf).toMatchObject({ id: original.id, title: "Original", state: "canceled" });

    const got = await s.http.tasks.get.query({ id: original.id });
    expect(got.rerunOf).toBeNull();
    expect(got.reruns.map((r) => [r.id, r.title, r.state])).toEqual([[rerun.id, "Original, again", "queued"]]);

    // A rerun of the rerun (once finished) links to it, and the original still lists only its own.
    await s.http.tasks.cancel.mutate({ id: rerun.id, reason: "superseded" });
    const second = await s.http.tasks.rerun.mutate({ id: rerun.id });
    expect(second.spec).toEqual((await s.http.tasks.get.query({ id: rerun.id })).spec);
    expect(second.rerunOf?.id).toBe(rerun.id);
    expect((await s.http.tasks.get.query({ id: original.id })).reruns).toHaveLength(1);
    expect((await s.http.tasks.get.query({ id: rerun.id })).reruns.map((r) => r.id)).toEqual([second.id]);

    // Audited like a create, with the link and the edited fields; its creation event names the original.
    const audit = await s.http.audit.list.query({ resourceId: rerun.id });
    expect(audit.items.find((a) => a.action === "task.rerun")).toMatchObject({
      resourceType: "task",
      actorId: original.createdBy,
      after: { state: "queued", title: "Original, again", rerunOf: original.id, edited: ["title", "input"] },
    });
    const events = await s.http.tasks.events.query({ taskId: rerun.id, kinds: ["created"] });
    expect(events.items[0]?.data).toMatchObject({ rerunOf: original.id });
    // On the provenance chain, which still verifies.
    const records = await s.http.provenance.list.query({ taskId: rerun.id });
    expect(records.items.find((r) => r.kind === "task.created")?.payload).toMatchObject({ rerunOf: original.id });
    expect(await s.http.provenance.verify.query()).toMatchObject({ ok: true, firstBad: null });
  });

  it("refuses a task that has not finished, and creates nothing", async () => {
    const queued = await s.http.tasks.create.mutate({ title: "Still queued" });
    const before = await taskCount();
    const r = await refusal(s.http.tasks.rerun.mutate({ id: queued.id, edits: { title: "x" } }));
    expect(r.code).toBe("BAD_REQUEST");
    expect(r.message).toContain(`Only a finished task can be rerun; task ${queued.id} is queued`);
    expect(await taskCount()).toBe(before);
    expect((await s.http.tasks.get.query({ id: queued.id })).reruns).toEqual([]);
  });

  it("checks edits as tasks.create checks a spec, naming each field, and creates nothing", async () => {
    const original = await finishedTask();
    const before = await taskCount();
    const cases: [Record<string, unknown>, string][] = [
      [{ title: "   " }, "edits.title: Title is required"],
      [{ riskTier: 7 }, "edits.riskTier: Risk tier must be 1, 2 or 3"],
      [{ priority: "urgent" }, "edits.priority: Priority must be low, medium, high or critical"],
      [{ capability: "Has Spaces" }, "edits.capability: Capability may contain only"],
      [{ title: "a\u0000b" }, "edits.title:"],
      [{ titel: "typo" }, 'Unrecognized key: "titel"'],
      [{ budget: { maxFiles: 0 } }, "edits.budget.maxFiles: Max files must be at least 1"],
      [
        { acceptanceCriteria: [{ text: "bad", check: { kind: "pattern", pattern: "(" } }] },
        "edits.acceptanceCriteria.0.check.pattern",
      ],
    ];
    for (const [edits, message] of cases) {
      const r = await refusal(s.http.tasks.rerun.mutate({ id: original.id, edits: edits as never }));
      expect(r.code, JSON.stringify(edits)).toBe("BAD_REQUEST");
      expect(r.message, JSON.stringify(edits)).toContain(message);
    }
    expect(await taskCount()).toBe(before);
    expect((await s.http.tasks.get.query({ id: original.id })).reruns).toEqual([]);
  });

  it("answers NOT_FOUND for an unknown task and FORBIDDEN for a viewer", async () => {
    const missing = await refusal(s.http.tasks.rerun.mutate({ id: "00000000-0000-4000-8000-000000000000" }));
    expect(missing).toMatchObject({ code: "NOT_FOUND" });
    expect(missing.message).toContain("does not exist");

    const original = await finishedTask();
    const before = await taskCount();
    const r = await refusal(s.httpAs(viewer).tasks.rerun.mutate({ id: original.id }));
    expect(r.code).toBe("FORBIDDEN");
    expect(r.message).toContain("This needs the operator role");
    expect(await taskCount()).toBe(before);
  });
});

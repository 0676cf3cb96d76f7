import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyRows } from "../src/server/provenance/rows.js";
import { taskSpecSchema } from "../src/shared/task-spec.js";
import { DATABASES } from "./helpers/databases.js";
import { actor, type Harness, harness } from "./helpers/services.js";

/**
 * What a crashed process leaves behind, written as it would have: a running attempt whose lease
 * expired, and a cancel it requested but never finished. Recovery is the real engine code.
 */
describe.each(DATABASES)("audit trail and provenance of recovery on %s", (kind) => {
  let h: Harness;
  const op = actor("operator", "olga");
  beforeAll(async () => {
    h = await harness(kind);
  });
  afterAll(() => h.dispose());

  const auditOf = async (id: string) =>
    [...(await h.services.audit.list({ resourceId: id, limit: 200 })).items].reverse();
  const chainOf = async (id: string) =>
    [...(await h.services.provenance.list({ taskId: id, limit: 200 })).items].reverse();

  it("a lost attempt is requeued by the recovery actor, with its end on the chain", async () => {
    const t = await h.services.tasks.create(op, taskSpecSchema.parse({ title: "orphaned" }));
    await h.db.exec(`
      UPDATE tasks SET state = 'running', attempt = 1 WHERE id = '${t.id}';
      INSERT INTO attempts (id, task_id, number, state, lease_owner, lease_expires_at, queued_at)
      VALUES (gen_random_uuid(), '${t.id}', 1, 'running', 'crashed-host:1:dead', now() - interval '1 minute', now());`);
    expect(await h.services.execution.recover()).toBe(1);

    const requeue = (await auditOf(t.id)).find((e) => e.action === "task.requeue");
    expect(requeue).toMatchObject({
      actorKind: "system",
      actorId: "recovery",
      before: { state: "running", attempt: 1, leaseOwner: "crashed-host:1:dead" },
      after: { state: "queued", recovered: true },
    });
    const chain = await chainOf(t.id);
    expect(chain.map((r) => r.kind)).toEqual(["task.created", "task.result"]);
    expect(chain[1]?.payload).toMatchObject({ attempt: 1, status: "no_result", worker: null });
    expect((chain[1]?.payload as { error?: string } | undefined)?.error).toContain(
      "Lease of crashed-host:1:dead expired",
    );
    expect((await h.services.provenance.verify()).ok).toBe(true);
    // The lost attempt's row and the requeue's audit entry and event are bound to the result record.
    expect(await verifyRows(h.db)).toMatchObject({ ok: true, findings: [] });
    expect((await h.services.tasks.get(t.id)).state).toBe("queued");
  });

  it("a cancel its process never finished ends unconfirmed, with who and why on the chain", async () => {
    const t = await h.services.tasks.create(op, taskSpecSchema.parse({ title: "half canceled" }));
    await h.db.exec(`
      UPDATE tasks SET state = 'canceling', cancel_requested_by = 'olga', cancel_reason = 'wrong input',
             cancel_requested_at = now() - interval '1 hour'
       WHERE id = '${t.id}';`);
    expect(await h.services.execution.recover()).toBe(1);

    const done = (await auditOf(t.id)).find((e) => e.action === "task.cancel_done");
    expect(done).toMatchObject({
      actorKind: "system",
      after: { state: "canceled", confirmed: false, requestedBy: "olga", reason: "wrong input" },
    });
    expect((await chainOf(t.id)).at(-1)).toMatchObject({
      kind: "task.cancel",
      payload: {
        by: "olga",
        reason: "wrong input",
        confirmed: false,
        detail: "the process handling the cancel stopped",
      },
    });
    expect((await h.services.provenance.verify()).ok).toBe(true);
    expect(await verifyRows(h.db)).toMatchObject({ ok: true, findings: [] });
  });
});

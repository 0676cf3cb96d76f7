import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Actor } from "../src/shared/roles.js";
import { taskSpecSchema } from "../src/shared/task-spec.js";
import { DATABASES } from "./helpers/databases.js";
import { type EngineApp, type FaultWorker, startEngineApp, startFaultWorker, waitFor } from "./helpers/fault-worker.js";
import { withEvents } from "./helpers/task-events.js";

const SLOTS = 3;
const TASKS = 12;

describe.each(DATABASES)("dispatch keeps a worker's slots full, never over its concurrency, on %s", (kind) => {
  let s: EngineApp;
  let fake: FaultWorker;

  beforeAll(async () => {
    s = await startEngineApp(kind);
    // Long enough that the three requests of one claim overlap at the worker even on a loaded machine
    // (at 200 ms, a CI-like run at load 5 once saw only two at a time).
    fake = await startFaultWorker({ durationMs: 1_000 });
    await s.http.workers.register.mutate({
      name: "slots",
      url: fake.url,
      capabilities: ["slots"],
      maxConcurrency: SLOTS,
    });
  });
  afterAll(async () => {
    await s?.stop();
    await fake?.close();
  });

  it("runs 12 queued tasks through 3 slots: each once, never more than 3 at a time, each freed slot refilled by the end that freed it", async () => {
    const actor: Actor = { kind: "user", id: "tester", name: "tester", role: "operator" };
    const specs = Array.from({ length: TASKS }, (_, i) =>
      taskSpecSchema.parse({ title: `slot task ${i}`, capability: "slots", input: { i } }),
    );
    const ids = await s.services.tasks.createMany(actor, specs);
    const done = await waitFor(
      `${TASKS} tasks accepted`,
      () => Promise.all(ids.map((id) => withEvents(s.http, { id }))),
      (ts) => ts.every((t) => t.state === "accepted"),
      60_000,
    );
    expect(fake.executions.size).toBe(TASKS);
    expect([...fake.executions.values()].every((n) => n === 1)).toBe(true);
    expect(done.every((t) => t.attempts.length === 1)).toBe(true);
    expect(fake.peakRuns()).toBe(SLOTS);
    // The first claims come from a dispatch pass; every later one was made in the transaction that ended
    // an attempt (its events carry that transaction's time), so no slot waited for a pass of its own.
    const events = done.flatMap((t) => t.events.filter((e) => e.type === "state_changed"));
    const endTimes = new Set(events.filter((e) => e.toState === "accepted").map((e) => e.createdAt.getTime()));
    const dispatches = events.filter((e) => e.toState === "running");
    expect(dispatches).toHaveLength(TASKS);
    expect(dispatches.filter((e) => endTimes.has(e.createdAt.getTime()))).toHaveLength(TASKS - SLOTS);
    // Every claim, whichever path made it, is audited and on a chain that verifies.
    expect((await s.services.provenance.verify()).ok).toBe(true);
    expect(await s.db.prisma.provenanceRecord.count({ where: { kind: "task.dispatched" } })).toBe(TASKS);
    expect(await s.db.prisma.auditEntry.count({ where: { action: "task.dispatch" } })).toBe(TASKS);
  });
});

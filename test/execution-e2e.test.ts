import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyRows } from "../src/server/provenance/rows.js";
import { TERMINAL_STATES } from "../src/shared/task-state.js";
import { DATABASES } from "./helpers/databases.js";
import { type EngineApp, startEngineApp, waitFor } from "./helpers/fault-worker.js";
import { withEvents } from "./helpers/task-events.js";
import { type ReferenceWorkerProcess, startReferenceWorkerProcess } from "./helpers/worker.js";

const TOKEN = "reference-secret-token";

describe.each(DATABASES)("execution end to end with the reference worker on %s", (kind) => {
  let s: EngineApp;
  let worker: ReferenceWorkerProcess;

  beforeAll(async () => {
    worker = await startReferenceWorkerProcess({ env: { WORKER_TOKEN: TOKEN, WORKER_MAX_CONCURRENCY: "4" } });
    s = await startEngineApp(kind, { MAX_AUTO_REDISPATCH: "1" });
    await s.http.workers.register.mutate({
      name: "reference",
      url: worker.url,
      capabilities: ["script"],
      maxConcurrency: 4,
      token: TOKEN,
    });
  });
  afterAll(async () => {
    await s?.stop();
    await worker?.stop();
  });

  const settled = (id: string) =>
    waitFor(
      `task ${id} to settle`,
      () => withEvents(s.http, { id }),
      (t) => TERMINAL_STATES.includes(t.state) || t.state === "changes_requested",
    );

  it("runs a script: queued → running → accepted, logs streamed, artifacts and verdict stored", async () => {
    const created = await s.http.tasks.create.mutate({
      title: "Write a greeting",
      mode: "feature",
      input: { script: "echo 'starting'; printf 'hello\\nworld\\n' > greeting.txt; echo done" },
      acceptanceCriteria: [{ text: "greeting exists", check: { kind: "command", command: "test -f greeting.txt" } }],
    });
    const t = await settled(created.id);
    expect(t.state).toBe("accepted");
    const path = t.events.filter((e) => e.type === "state_changed").map((e) => e.toState);
    expect(path).toEqual(["running", "accepted"]);
    expect(t.events.some((e) => e.type === "log" && String(e.data.line).includes("starting"))).toBe(true);
    expect(t.attempts).toHaveLength(1);
    const a = t.attempts[0]!;
    expect(a).toMatchObject({ number: 1, state: "completed", verdict: "accept", worker: { name: "reference" } });
    expect(a.finishedAt).toBeInstanceOf(Date);
    expect(a.artifacts.map((x) => [x.path, x.operation, x.linesAdded])).toEqual([["greeting.txt", "create", 2]]);
    expect(a.artifacts[0]?.diff).toContain("+hello");
    expect(t.verdict?.verdict).toBe("accept");
    expect(t.verdict?.criteria[0]?.status).toBe("passed");
    expect(t.artifacts).toHaveLength(1);
    // The stored row and the worker list agree with what ran; the token never comes back.
    const workers = await s.http.workers.list.query();
    expect(workers[0]).toMatchObject({ name: "reference", hasToken: true, inFlight: 0, breaker: { state: "closed" } });
    expect(JSON.stringify(workers)).not.toContain(TOKEN);
  });

  it("sends a placeholder back as changes_requested, re-dispatches with the critique, then leaves it to an operator", async () => {
    const created = await s.http.tasks.create.mutate({
      title: "Leave a placeholder",
      mode: "feature",
      input: { script: "printf 'def run():\\n    # TODO: implement\\n    pass\\n' > run.py" },
    });
    const t = await waitFor(
      "two judged attempts",
      () => withEvents(s.http, { id: created.id }),
      (x) => x.state === "changes_requested" && x.attempts.length === 2,
    );
    const [first, second] = t.attempts;
    expect(first?.verdict).toBe("changes_requested");
    const finding = first?.judgement?.judges.flatMap((j) => j.findings).find((f) => f.path === "run.py");
    expect(finding).toMatchObject({ path: "run.py", line: 2 });
    expect(finding?.snippet).toContain("TODO: implement");
    // The automatic re-dispatch carried the council's critique to the worker.
    expect(second?.critique?.fromAttempt).toBe(1);
    expect(second?.critique?.findings.some((f) => f.path === "run.py")).toBe(true);
    expect(t.redispatches).toBe(1);
    expect(t.events.some((e) => e.toState === "queued" && e.data.automatic === true)).toBe(true);

    // An operator's retry carries the latest critique and is one attempt: the automatic budget stays spent
    // (a re-dispatch would have queued the task in the verdict's own commit, so this state is final).
    await s.http.tasks.retry.mutate({ id: created.id });
    const again = await waitFor(
      "the retried attempt",
      () => withEvents(s.http, { id: created.id }),
      (x) => x.state === "changes_requested" && x.attempts.length === 3,
    );
    expect(again.attempts.map((a) => a.critique?.fromAttempt ?? null)).toEqual([null, 1, 2]);
    expect(again.redispatches).toBe(1);
    expect(again.attempts[2]?.origin).toMatchObject({ kind: "retry", by: "admin", autoLeft: 0, autoMax: 1 });
  });

  it("cancels a running task: the script is stopped and the cancel confirmed", async () => {
    const created = await s.http.tasks.create.mutate({
      title: "Sleep a long time",
      input: { script: "echo sleeping; sleep 60" },
    });
    await waitFor(
      "the script to start",
      () => withEvents(s.http, { id: created.id }),
      (x) => x.state === "running" && x.events.some((e) => e.type === "log"),
    );
    const c = await s.http.tasks.cancel.mutate({ id: created.id, reason: "not needed any more" });
    expect(c).toMatchObject({
      state: "canceled",
      cancelConfirmed: true,
      cancelReason: "not needed any more",
      cancelRequestedBy: "admin",
    });
    const t = await withEvents(s.http, { id: created.id });
    expect(t.attempts[0]?.state).toBe("canceled");
    expect(t.cancelRequestedAt).toBeInstanceOf(Date);
    expect(t.events.at(-1)).toMatchObject({ fromState: "canceling", toState: "canceled" });
  });

  it("every row the log binds still matches it: --rows passes on what the runs above stored", async () => {
    // Real results (logs, checks, diffs, judgements with findings), re-dispatches, a retry and a
    // cancel: digests taken when writing must equal those of the rows read back (jsonb reorders keys).
    const report = await verifyRows(s.db);
    expect(report.findings).toEqual([]);
    expect(report.ok).toBe(true);
    const [{ n }] = (await s.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM artifacts`)) as [{ n: number }];
    expect(n).toBeGreaterThan(0);
    expect(report.checked).toBeGreaterThan(n);
  });
});

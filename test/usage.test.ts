import { randomUUID } from "node:crypto";
import { TRPCClientError } from "@trpc/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrate, readMigrations } from "../src/server/db/migrate.js";
import { usageCounters, usageRollup } from "../src/server/metrics/usage.js";
import type { AppRouter } from "../src/server/router.js";
import { createServices } from "../src/server/services.js";
import type { TaskSpecInput } from "../src/shared/task-spec.js";
import { ACTIVE_STATES } from "../src/shared/task-state.js";
import type { ExecuteRequest, ExecuteResult } from "../src/shared/worker-protocol.js";
import { DATABASES, freshDatabase } from "./helpers/databases.js";
import {
  ADMIN_TOKEN,
  type EngineApp,
  FAST_ENV,
  type FaultWorker,
  okResult,
  startEngineApp,
  startFaultWorker,
  waitFor,
} from "./helpers/fault-worker.js";
import { silentLog, testConfig } from "./helpers/services.js";

type Usage = NonNullable<ExecuteResult["usage"]>;

async function refusal(p: Promise<unknown>): Promise<TRPCClientError<AppRouter>> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TRPCClientError);
  return err as TRPCClientError<AppRouter>;
}

/** The value of one series in a Prometheus text exposition; undefined when the series is not there. */
function series(text: string, name: string, labels: Record<string, string>): number | undefined {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort()
    .join(",");
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = (m[2] ?? "").split(",").sort().join(",");
    if (got === want) return Number(m[3]);
  }
  return undefined;
}

describe.each(DATABASES)("usage and cost on %s", (kind) => {
  let s: EngineApp;
  const fakes: FaultWorker[] = [];

  beforeAll(async () => {
    s = await startEngineApp(kind, { MAX_AUTO_REDISPATCH: "0" });
  });
  afterAll(async () => {
    await s?.stop();
    await Promise.all(fakes.map((f) => f.close()));
  });

  /** A real protocol v1 worker over HTTP whose every result reports `usage`, under a capability of its own. */
  async function worker(name: string, capability: string, usage: Usage | ((req: ExecuteRequest) => Usage)) {
    const f = await startFaultWorker({
      result: (req) => ({ ...okResult(req), usage: typeof usage === "function" ? usage(req) : usage }),
    });
    fakes.push(f);
    return s.http.workers.register.mutate({ name, url: f.url, capabilities: [capability], maxConcurrency: 4 });
  }
  const settled = (id: string) =>
    waitFor(
      `task ${id} to settle`,
      () => s.http.tasks.get.query({ id }),
      // Ended, or waiting for a person: "changes requested" is where a task over budget stops (no re-dispatch here).
      (t) => !ACTIVE_STATES.includes(t.state),
    );
  const run = async (capability: string, extra: Partial<TaskSpecInput> = {}) => {
    const t = await s.http.tasks.create.mutate({
      title: `usage on ${capability}`,
      capability,
      input: { script: "true" },
      ...extra,
    });
    return settled(t.id);
  };

  // Known figures: alpha's attempts report 1,000 in / 200 out / $0.012345 on model-a; beta's 50 / 5 / $1.5 on
  // model-b; gamma's tokens only, no cost and no model.
  const ALPHA = { inputTokens: 1_000, outputTokens: 200, costUsd: 0.012345, model: "model-a", durationMs: 5 };
  const BETA = { inputTokens: 50, outputTokens: 5, costUsd: 1.5, model: "model-b" };
  const GAMMA = { inputTokens: 7, outputTokens: 3 };
  const ids: { alpha: string[]; beta: string[]; gamma: string[] } = { alpha: [], beta: [], gamma: [] };

  it("shows each attempt's reported usage and the task's total in tasks.get", async () => {
    await worker("alpha", "cap-alpha", ALPHA);
    await worker("beta", "cap-beta", BETA);
    await worker("gamma", "cap-gamma", GAMMA);
    for (let i = 0; i < 2; i++) ids.alpha.push((await run("cap-alpha")).id);
    // Over its cost budget ($1.5 > $1): "changes requested", which an operator may retry.
    ids.beta.push((await run("cap-beta", { budget: { maxCostUsd: 1 } })).id);
    const g = await run("cap-gamma");
    ids.gamma.push(g.id);

    const a = await s.http.tasks.get.query({ id: ids.alpha[0] ?? "" });
    expect(a.state).toBe("accepted");
    expect(a.attempts[0]?.usage).toEqual({
      inputTokens: 1_000,
      outputTokens: 200,
      costUsd: 0.012345,
      model: "model-a",
    });
    expect(a.usage).toEqual({
      attempts: 1,
      inputTokens: 1_000,
      outputTokens: 200,
      costUsd: 0.012345,
      models: ["model-a"],
    });
    // The stored result keeps the usage as sent, the model included.
    expect(a.attempts[0]?.result?.usage).toMatchObject({ model: "model-a", costUsd: 0.012345 });

    expect(g.attempts[0]?.usage).toEqual({ inputTokens: 7, outputTokens: 3, costUsd: null, model: null });
    expect(g.usage).toEqual({ attempts: 1, inputTokens: 7, outputTokens: 3, costUsd: null, models: [] });
    // Four tasks run one after the other: on a loaded machine (load 20 on 2 cores) that took 30 s.
  }, 180_000);

  it("sums a task's usage over its attempts (a retry adds an attempt)", async () => {
    const id = ids.beta[0] ?? "";
    expect((await s.http.tasks.get.query({ id })).state).toBe("changes_requested");
    await s.http.tasks.retry.mutate({ id });
    const t = await waitFor(
      "the retried task to settle again",
      () => s.http.tasks.get.query({ id }),
      (x) => x.attempts.length === 2 && !ACTIVE_STATES.includes(x.state),
    );
    expect(t.attempts.map((x) => x.usage?.costUsd)).toEqual([1.5, 1.5]);
    expect(t.usage).toEqual({ attempts: 2, inputTokens: 100, outputTokens: 10, costUsd: 3, models: ["model-b"] });
  });

  it("rolls usage up by worker, by model and by UTC day with one GROUP BY each", async () => {
    const from = new Date(Date.now() - 3_600_000);
    const to = new Date(Date.now() + 60_000);
    const byWorker = await s.http.metrics.usage.query({ from, to, groupBy: "worker" });
    // Ordered by cost: beta ($3), alpha ($0.02469), then gamma (no cost).
    expect(byWorker.groups.map((g) => [g.label, g.attempts, g.inputTokens, g.outputTokens, g.costUsd])).toEqual([
      ["beta", 2, 100, 10, 3],
      ["alpha", 2, 2_000, 400, 0.02469],
      ["gamma", 1, 7, 3, null],
    ]);
    expect(byWorker.total).toEqual({ attempts: 5, inputTokens: 2_107, outputTokens: 413, costUsd: 3.02469 });
    expect(byWorker.truncated).toBe(false);

    const byModel = await s.http.metrics.usage.query({ from, to, groupBy: "model" });
    expect(byModel.groups.map((g) => [g.key, g.label, g.inputTokens, g.costUsd])).toEqual([
      ["model-b", "model-b", 100, 3],
      ["model-a", "model-a", 2_000, 0.02469],
      [null, "(not reported)", 7, null],
    ]);

    // The finisher stamps each end with the time it wrote it: move alpha's second task and gamma's attempt to
    // known days so the daily sums are known too.
    const day = (d: string) => new Date(`${d}T12:00:00Z`);
    await s.db.query(`UPDATE attempts SET finished_at = $2 WHERE task_id = $1::uuid`, [
      ids.alpha[1],
      day("2026-11-02").toISOString(),
    ]);
    await s.db.query(`UPDATE attempts SET finished_at = $2 WHERE task_id = $1::uuid`, [
      ids.gamma[0],
      new Date("2026-11-03T23:59:59.999Z").toISOString(),
    ]);
    await s.db.query(`UPDATE attempts SET finished_at = $2 WHERE task_id = $1::uuid`, [
      ids.alpha[0],
      new Date("2026-11-03T00:00:00.000Z").toISOString(),
    ]);
    const byDay = await s.http.metrics.usage.query({
      from: day("2026-11-01"),
      to: new Date("2026-11-04T00:00:00Z"),
      groupBy: "day",
    });
    expect(byDay.groups.map((g) => [g.key, g.attempts, g.inputTokens, g.outputTokens, g.costUsd])).toEqual([
      ["2026-11-02", 1, 1_000, 200, 0.012345],
      ["2026-11-03", 2, 1_007, 203, 0.012345],
    ]);
    expect(byDay.total).toEqual({ attempts: 3, inputTokens: 2_007, outputTokens: 403, costUsd: 0.02469 });
    // The range's end is excluded: nothing of the 3rd when it ends at the 3rd's midnight.
    const before = await s.http.metrics.usage.query({ from: day("2026-11-01"), to: day("2026-11-03"), groupBy: "day" });
    expect(before.groups.map((g) => g.key)).toEqual(["2026-11-02", "2026-11-03"]);
    expect(before.total.attempts).toBe(2);
    const empty = await s.http.metrics.usage.query({ from: day("2025-01-01"), to: day("2025-02-01"), groupBy: "day" });
    expect(empty).toMatchObject({ groups: [], total: { attempts: 0, inputTokens: 0, outputTokens: 0, costUsd: null } });
  });

  it("refuses a bad range or grouping with a clear message", async () => {
    const from = new Date("2026-01-01T00:00:00Z");
    const tooLong = await refusal(
      s.http.metrics.usage.query({ from, to: new Date("2027-01-03T00:00:00Z"), groupBy: "day" }),
    );
    expect(tooLong.data?.code).toBe("BAD_REQUEST");
    expect(tooLong.message).toContain("at most 366 days");
    const backwards = await refusal(s.http.metrics.usage.query({ from, to: from, groupBy: "day" }));
    expect(backwards.message).toContain("from must be before to");
    const badGroup = await refusal(
      s.http.metrics.usage.query({ from, to: new Date("2026-01-02T00:00:00Z"), groupBy: "team" as "day" }),
    );
    expect(badGroup.message).toContain("groupBy must be one of worker, day, model");
  });

  it("exports the all-time totals by worker and model in /metrics, the same after a restart", async () => {
    const scrape = async () => {
      const res = await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      expect(res.status).toBe(200);
      return res.text();
    };
    const text = await scrape();
    const alpha = { worker: "alpha", model: "model-a" };
    expect(series(text, "agency_usage_input_tokens_total", alpha)).toBe(2_000);
    expect(series(text, "agency_usage_output_tokens_total", alpha)).toBe(400);
    expect(series(text, "agency_usage_cost_usd_total", alpha)).toBeCloseTo(0.02469, 9);
    expect(series(text, "agency_usage_cost_usd_total", { worker: "beta", model: "model-b" })).toBe(3);
    expect(series(text, "agency_usage_input_tokens_total", { worker: "gamma", model: "unreported" })).toBe(7);
    expect(series(text, "agency_usage_cost_usd_total", { worker: "gamma", model: "unreported" })).toBe(0);
    expect(text).toContain("# TYPE agency_usage_cost_usd_total counter");

    // A process started afresh over the same database (a restart, or a second node) exports the same totals.
    const config = testConfig({ PORT: "0", HOST: "127.0.0.1", WEB_DIST_DIR: "/nonexistent", ...FAST_ENV });
    const again = await createServices(s.db, silentLog, config);
    const fresh = (await again.metrics.prometheus()).body;
    await again.metrics.stop();
    for (const name of [
      "agency_usage_input_tokens_total",
      "agency_usage_output_tokens_total",
      "agency_usage_cost_usd_total",
    ]) {
      for (const labels of [alpha, { worker: "beta", model: "model-b" }, { worker: "gamma", model: "unreported" }]) {
        expect(series(fresh, name, labels)).toBe(series(text, name, labels));
      }
    }
  });

  it("keeps the model label bounded: past the 20 models with the most tokens, the rest are 'other'", async () => {
    // 22 distinct model names on alpha's attempts (the column as the finisher writes it, set here directly).
    const rows = await s.db.query<{ id: string }>(
      `SELECT a.id FROM attempts a JOIN workers w ON w.id = a.worker_id WHERE w.name = 'alpha' ORDER BY a.id`,
    );
    expect(rows).toHaveLength(2);
    const worker = (await s.http.workers.list.query()).find((w) => w.name === "alpha");
    const task = await s.http.tasks.get.query({ id: ids.alpha[0] ?? "" });
    const attemptsBefore = task.attempts.length;
    for (let i = 0; i < 22; i++) {
      await s.db.query(
        `INSERT INTO attempts (id, task_id, number, worker_id, state, queued_at, finished_at, input_tokens, output_tokens,
                               cost_usd, model)
         VALUES (gen_random_uuid(), $1::uuid, $2, $3::uuid, 'completed', now(), now(), $4, 0, 0.5, $5)`,
        [task.id, attemptsBefore + 100 + i, worker?.id, 1_000 - i, `bulk-model-${String(i).padStart(2, "0")}`],
      );
    }
    const counters = await usageCounters(s.db);
    const models = new Set(counters.map((c) => c.model));
    // model-a (2,400 tokens) and bulk-model-00 … bulk-model-18 keep their names; bulk-model-19 … 21 are "other".
    expect(models.has("model-a")).toBe(true);
    expect(models.has("bulk-model-18")).toBe(true);
    expect(models.has("bulk-model-19")).toBe(false);
    const other = counters.find((c) => c.worker === "alpha" && c.model === "other");
    expect(other).toEqual({
      worker: "alpha",
      model: "other",
      inputTokens: 981 + 980 + 979,
      outputTokens: 0,
      costUsd: 1.5,
    });
    expect([...models].filter((m) => !["other", "unreported"].includes(m))).toHaveLength(20);
  });

  it("a result over budget.maxCostUsd gets a budget finding naming the figures", async () => {
    await worker("delta", "cap-delta", { inputTokens: 10, outputTokens: 10, costUsd: 0.25, model: "model-d" });
    const over = await run("cap-delta", { budget: { maxCostUsd: 0.1 } });
    expect(over.state).toBe("changes_requested");
    const findings = over.attempts[0]?.judgement?.judges.flatMap((j) => j.findings) ?? [];
    const cost = findings.find((f) => f.pattern === "max-cost");
    expect(cost).toMatchObject({ judge: "budget-scope", severity: "error" });
    expect(cost?.message).toBe("The attempt cost $0.25 (model-d) by the worker's report; the budget allows $0.10.");

    const within = await run("cap-delta", { budget: { maxCostUsd: 0.25 } });
    expect(within.state).toBe("accepted");
    expect(within.spec.budget.maxCostUsd).toBe(0.25);
  });

  it("refuses a bad maxCostUsd and changes nothing", async () => {
    const before = await s.http.tasks.count.query({});
    for (const [maxCostUsd, message] of [
      [-1, "Max cost must be more than 0"],
      [0, "Max cost must be more than 0"],
      [100_001, "Max cost must be at most 100000 USD"],
      [0.0000001, "Max cost may have at most 6 decimal places"],
    ] as const) {
      const err = await refusal(
        s.http.tasks.create.mutate({ title: "bad budget", capability: "cap-delta", budget: { maxCostUsd } }),
      );
      expect(err.data?.code).toBe("BAD_REQUEST");
      expect(err.message).toContain(message);
    }
    expect(await s.http.tasks.count.query({})).toEqual(before);
  });

  it("a worker answer with a negative cost is a broken answer: the attempt fails and nothing is counted", async () => {
    await worker("epsilon", "cap-epsilon", { inputTokens: 1, outputTokens: 1, costUsd: -0.5 });
    const t = await run("cap-epsilon");
    expect(t.attempts.length).toBeGreaterThan(0);
    for (const a of t.attempts) {
      expect(a.state).toBe("failed");
      expect(a.error).toContain("costUsd");
      expect(a.usage).toBeNull();
    }
    expect(t.usage.attempts).toBe(0);
    const roll = await s.http.metrics.usage.query({
      from: new Date(Date.now() - 3_600_000),
      to: new Date(Date.now() + 60_000),
      groupBy: "worker",
    });
    expect(roll.groups.find((g) => g.label === "epsilon")).toBeUndefined();
  });
});

describe.each(DATABASES)("the usage columns' migration on %s", (kind) => {
  it("backfills the columns from results stored before it, keeping only figures the columns can hold", async () => {
    const db = await freshDatabase(kind, { migrate: false });
    try {
      const all = readMigrations();
      const ours = all.findIndex((m) => m.name.startsWith("20261215300000_"));
      expect(ours).toBeGreaterThan(0);
      await migrate(db, all.slice(0, ours));
      const task = randomUUID();
      await db.query(
        `INSERT INTO tasks (id, title, description, priority, priority_rank, risk_tier, mode, capability, spec, created_by)
         VALUES ($1::uuid, 'old', '', 'medium', 1, 2, 'feature', 'script', '{}'::jsonb, 'test')`,
        [task],
      );
      const results: unknown[] = [
        { usage: { inputTokens: 1200, outputTokens: 34, costUsd: 0.0123456789, model: "old-model", durationMs: 9 } },
        { usage: { durationMs: 5 } },
        { usage: { inputTokens: -1, outputTokens: 3e9, costUsd: "0.5", model: "" } },
        { usage: "not an object" },
        null,
      ];
      for (const [i, result] of results.entries()) {
        await db.query(
          `INSERT INTO attempts (id, task_id, number, state, queued_at, finished_at, result)
           VALUES ($1::uuid, $2::uuid, $3, 'completed', now(), now(), $4::jsonb)`,
          [randomUUID(), task, i + 1, result === null ? null : JSON.stringify(result)],
        );
      }
      await migrate(db, all);
      const rows = await db.query<{
        number: number;
        input_tokens: number | null;
        output_tokens: number | null;
        cost_usd: string | null;
        model: string | null;
      }>(`SELECT number, input_tokens, output_tokens, cost_usd::text AS cost_usd, model FROM attempts ORDER BY number`);
      expect(rows).toEqual([
        { number: 1, input_tokens: 1200, output_tokens: 34, cost_usd: "0.012346", model: "old-model" },
        { number: 2, input_tokens: null, output_tokens: null, cost_usd: null, model: null },
        { number: 3, input_tokens: null, output_tokens: null, cost_usd: null, model: null },
        { number: 4, input_tokens: null, output_tokens: null, cost_usd: null, model: null },
        { number: 5, input_tokens: null, output_tokens: null, cost_usd: null, model: null },
      ]);
      const roll = await usageRollup(db, {
        from: new Date(Date.now() - 60_000),
        to: new Date(Date.now() + 60_000),
        groupBy: "model",
      });
      expect(roll.total).toEqual({ attempts: 1, inputTokens: 1200, outputTokens: 34, costUsd: 0.012346 });
    } finally {
      await db.dispose();
    }
    // Two migration runs from an empty database: long on a loaded machine.
  }, 180_000);
});

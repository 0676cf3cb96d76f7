import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/server/config.js";
import type { TaskSpecInput } from "../src/shared/task-spec.js";
import { TERMINAL_STATES } from "../src/shared/task-state.js";
import { DATABASES } from "./helpers/databases.js";
import {
  type EngineApp,
  type FaultWorker,
  type FaultWorkerOptions,
  okResult,
  startEngineApp,
  startFaultWorker,
  waitFor,
} from "./helpers/fault-worker.js";

const MiB = 1024 * 1024;
/** What a misbehaving answer may add to the reading process's RSS: the cap (8 MiB) and the noise of a running server. */
const RSS_GROWTH_LIMIT = 30 * MiB;

/**
 * The peak RSS of this process (the server runs in it and reads the worker's answers) while `run`
 * runs, over the RSS just before, sampled every 5 ms.
 */
async function rssGrowth<T>(run: () => Promise<T>): Promise<{ value: T; growth: number }> {
  const before = process.memoryUsage().rss;
  let peak = before;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 5);
  try {
    const value = await run();
    peak = Math.max(peak, process.memoryUsage().rss);
    return { value, growth: peak - before };
  } finally {
    clearInterval(timer);
  }
}

describe("worker answer caps: configuration", () => {
  it("defaults to 8 MiB per answer or line, 8 MiB of artifacts and 1,000 artifacts, and refuses nonsense naming the variable", () => {
    const c = loadConfig({});
    expect(c.WORKER_MAX_RESPONSE_BYTES).toBe(8 * MiB);
    expect(c.WORKER_MAX_ARTIFACT_BYTES).toBe(8 * MiB);
    expect(c.WORKER_MAX_ARTIFACTS).toBe(1000);
    expect(() => loadConfig({ WORKER_MAX_RESPONSE_BYTES: "10" })).toThrow(/WORKER_MAX_RESPONSE_BYTES/);
    expect(() => loadConfig({ WORKER_MAX_ARTIFACTS: "0" })).toThrow(/WORKER_MAX_ARTIFACTS/);
  });
});

describe.each(DATABASES)("worker answer caps on %s", (kind) => {
  let s: EngineApp;
  const fakes: FaultWorker[] = [];
  let n = 0;

  beforeAll(async () => {
    // The answer cap at its default; the artifact caps low enough to reach with a small answer.
    s = await startEngineApp(kind, {
      WORKER_MAX_ARTIFACT_BYTES: String(2 * MiB),
      WORKER_MAX_ARTIFACTS: "50",
      // Tier 3 (one attempt, two tries) with a try timeout long enough for a loaded machine.
      RETRY_POLICY: JSON.stringify({ 3: { tryTimeoutMs: 15_000 } }),
    });
    // Warm-up: the paths a task takes are loaded and compiled before any RSS is measured.
    await worker("caps-warm");
    expect((await settled((await task("caps-warm")).id)).state).toBe("accepted");
  });
  afterAll(async () => {
    await s?.stop();
    await Promise.all(fakes.map((f) => f.close()));
  });

  async function worker(capability: string, opts: FaultWorkerOptions = {}) {
    const f = await startFaultWorker(opts);
    fakes.push(f);
    await s.http.workers.register.mutate({ name: `caps${++n}`, url: f.url, capabilities: [capability] });
    return f;
  }
  const task = (capability: string, extra: Partial<TaskSpecInput> = {}) =>
    s.http.tasks.create.mutate({ title: `task for ${capability}`, capability, input: { script: "true" }, ...extra });
  const settled = (id: string) =>
    waitFor(
      `task ${id} to settle`,
      () => s.http.tasks.get.query({ id }),
      (t) => TERMINAL_STATES.includes(t.state),
      60_000,
    );
  const storedArtifacts = async (taskId: string) =>
    (
      await s.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM artifacts WHERE attempt_id IN (SELECT id FROM attempts WHERE task_id = $1::uuid)`,
        [taskId],
      )
    )[0]?.n;

  it("aborts a 500 MB JSON answer at WORKER_MAX_RESPONSE_BYTES: RSS stays within a few MB, the attempt fails, not retried", async () => {
    const fake = await worker("caps-json", { afterwards: "huge-json" });
    const { value: t, growth } = await rssGrowth(async () => settled((await task("caps-json", { riskTier: 3 })).id));
    console.log(
      `500 MB JSON answer on ${kind}: RSS +${(growth / MiB).toFixed(1)} MiB; worker wrote ${(fake.hugeBytesSent() / MiB).toFixed(1)} MiB`,
    );
    expect(t.state).toBe("failed");
    expect(t.attempts).toHaveLength(1);
    expect(t.attempts[0]?.tries).toBe(1);
    expect(t.attempts[0]?.error).toMatch(
      /^Worker caps\d+'s answer exceeded WORKER_MAX_RESPONSE_BYTES \(8 MiB\): more than 8 MiB arrived; the request was aborted/,
    );
    expect(growth).toBeLessThan(RSS_GROWTH_LIMIT);
    // The reader stopped: the worker got to write the cap and what the sockets buffer, not 500 MB.
    expect(fake.hugeBytesSent()).toBeLessThan(64 * MiB);
  });

  it("refuses a JSON answer whose Content-Length is over the cap without reading it", async () => {
    const fake = await worker("caps-declared", { afterwards: "huge-json-declared" });
    const t = await settled((await task("caps-declared", { riskTier: 3 })).id);
    expect(t.state).toBe("failed");
    expect(t.attempts[0]?.error).toContain("exceeded WORKER_MAX_RESPONSE_BYTES (8 MiB): it announced 476.8 MiB");
    expect(fake.hugeBytesSent()).toBeLessThan(64 * MiB);
  });

  it("aborts a 500 MB NDJSON line at WORKER_MAX_RESPONSE_BYTES: RSS stays within a few MB", async () => {
    const fake = await worker("caps-line", { afterwards: "huge-line" });
    const { value: t, growth } = await rssGrowth(async () => settled((await task("caps-line", { riskTier: 3 })).id));
    console.log(
      `500 MB NDJSON line on ${kind}: RSS +${(growth / MiB).toFixed(1)} MiB; worker wrote ${(fake.hugeBytesSent() / MiB).toFixed(1)} MiB`,
    );
    expect(t.state).toBe("failed");
    expect(t.attempts[0]?.tries).toBe(1);
    expect(t.attempts[0]?.error).toMatch(
      /^Worker caps\d+ sent a stream line longer than WORKER_MAX_RESPONSE_BYTES \(8 MiB\); the request was aborted/,
    );
    expect(growth).toBeLessThan(RSS_GROWTH_LIMIT);
    expect(fake.hugeBytesSent()).toBeLessThan(64 * MiB);
  });

  it("reads only the first 64 KiB of a 500 MB error body, for the message", async () => {
    const fake = await worker("caps-error", { afterwards: "huge-error" });
    const { value: t, growth } = await rssGrowth(async () => settled((await task("caps-error", { riskTier: 3 })).id));
    console.log(
      `500 MB error bodies on ${kind}: RSS +${(growth / MiB).toFixed(1)} MiB; worker wrote ${(fake.hugeBytesSent() / MiB).toFixed(1)} MiB over ${fake.requests.length} tries`,
    );
    expect(t.state).toBe("failed");
    const error = t.attempts[0]?.error ?? "";
    expect(error).toMatch(
      /^Worker caps\d+ answered HTTP 500: worker exploded: x+ … \(body over 64 KiB, not read further\)$/,
    );
    expect(error.length).toBeLessThan(700);
    expect(growth).toBeLessThan(RSS_GROWTH_LIMIT);
    expect(fake.hugeBytesSent()).toBeLessThan(64 * MiB);
  });

  it("fails an attempt whose artifacts total more than WORKER_MAX_ARTIFACT_BYTES, storing none", async () => {
    const mib = "y".repeat(MiB);
    await worker("caps-total", {
      result: (req) => ({
        ...okResult(req),
        artifacts: [1, 2, 3].map((i) => ({ path: `big${i}.txt`, operation: "create" as const, content: mib })),
      }),
    });
    const t = await settled((await task("caps-total", { riskTier: 3 })).id);
    expect(t.state).toBe("failed");
    expect(t.attempts[0]?.tries).toBe(1);
    expect(t.attempts[0]?.error).toMatch(
      /^Worker caps\d+'s artifacts total 3 MiB of content and diffs, over WORKER_MAX_ARTIFACT_BYTES \(2 MiB\)\.$/,
    );
    expect(await storedArtifacts(t.id)).toBe(0);
  });

  it("fails an attempt with more than WORKER_MAX_ARTIFACTS artifacts", async () => {
    await worker("caps-count", {
      result: (req) => ({
        ...okResult(req),
        artifacts: Array.from({ length: 60 }, (_, i) => ({
          path: `f${i}.txt`,
          operation: "create" as const,
          content: "z",
        })),
      }),
    });
    const t = await settled((await task("caps-count", { riskTier: 3 })).id);
    expect(t.state).toBe("failed");
    expect(t.attempts[0]?.error).toMatch(
      /^Worker caps\d+'s result has 60 artifacts, over WORKER_MAX_ARTIFACTS \(50\)\.$/,
    );
    expect(await storedArtifacts(t.id)).toBe(0);
  });
});

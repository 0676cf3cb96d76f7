import { randomBytes, randomUUID } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import type { TierPolicy } from "../src/server/config.js";
import { WorkerCallError } from "../src/server/execution/errors.js";
import { type ExecuteCall, WorkerClient, type WorkerTarget } from "../src/server/execution/worker-client.js";
import { SecretBox } from "../src/server/keystore/secrets.js";
import { type BreakerChange, BreakerRegistry } from "../src/server/workers/breakers.js";
import { type TaskSpecInput, taskSpecSchema } from "../src/shared/task-spec.js";
import { PROTOCOL_VERSION } from "../src/shared/worker-protocol.js";
import { deadWorkerUrl, type FaultWorker, type FaultWorkerOptions, startFaultWorker } from "./helpers/fault-worker.js";

/**
 * The worker client and the circuit breaker together, against real sockets: every way of failing
 * to reach or read a worker must count toward its breaker, and what is not the worker's fault
 * (the task's deadline, a cancel) must not.
 */

const FAILURES = 3;
const changes: BreakerChange[] = [];
const breakers = new BreakerRegistry(
  { failures: FAILURES, windowMs: 60_000, halfOpenAfterMs: 60_000, closeAfterSuccesses: 1 },
  (c) => changes.push(c),
);
const client = new WorkerClient(
  {
    allowedHosts: ["127.0.0.1", "localhost", "worker.invalid"],
    retryBaseDelayMs: 1,
    retryMaxDelayMs: 5,
    cancelTimeoutMs: 500,
    healthTimeoutMs: 1000,
    maxResponseBytes: 1024 * 1024,
    maxArtifactBytes: 1024 * 1024,
    maxArtifacts: 100,
  },
  breakers,
  new SecretBox(randomBytes(32)),
);

const fakes: FaultWorker[] = [];
afterAll(async () => {
  await Promise.all(fakes.map((f) => f.close()));
});

async function fake(opts: FaultWorkerOptions): Promise<FaultWorker> {
  const f = await startFaultWorker(opts);
  fakes.push(f);
  return f;
}

const target = (url: string, name = `w-${randomUUID().slice(0, 6)}`): WorkerTarget => ({
  id: randomUUID(),
  name,
  url,
  token: null,
});

const policy = (over: Partial<TierPolicy> = {}): TierPolicy => ({
  attempts: 1,
  tries: 1,
  tryTimeoutMs: 5_000,
  deadlineMs: 60_000,
  ...over,
});

function call(
  worker: WorkerTarget,
  opts: {
    policy?: TierPolicy;
    spec?: Partial<TaskSpecInput>;
    deadlineMs?: number;
    signal?: AbortSignal;
    onTryFailed?: ExecuteCall["onTryFailed"];
  } = {},
): ExecuteCall {
  const p = opts.policy ?? policy();
  const deadline = Date.now() + (opts.deadlineMs ?? p.deadlineMs);
  return {
    worker,
    policy: p,
    deadline,
    signal: opts.signal ?? new AbortController().signal,
    request: {
      protocol: PROTOCOL_VERSION,
      taskId: randomUUID(),
      attempt: 1,
      spec: taskSpecSchema.parse({ title: "t", capability: "c", input: { script: "true" }, ...opts.spec }),
      deadline: new Date(deadline).toISOString(),
    },
    ...(opts.onTryFailed ? { onTryFailed: opts.onTryFailed } : {}),
  };
}

async function failure(p: Promise<unknown>): Promise<WorkerCallError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkerCallError);
  return err as WorkerCallError;
}

describe("every failure to reach or read a worker counts toward its breaker", () => {
  const classes: { name: string; url: () => Promise<string>; message: RegExp; kind?: string; tryTimeoutMs?: number }[] =
    [
      { name: "connection refused", url: deadWorkerUrl, message: /Could not reach worker .*connection refused/ },
      {
        name: "connection reset (socket destroyed before answering)",
        url: async () => (await fake({ afterwards: "destroy" })).url,
        message: /Could not reach worker .*connection closed/,
      },
      {
        name: "closed mid-body (JSON)",
        url: async () => (await fake({ afterwards: "close-mid-body" })).url,
        message: /answer broke off while it was read/,
      },
      {
        name: "closed mid-stream (NDJSON)",
        url: async () => (await fake({ afterwards: "close-mid-stream" })).url,
        message: /answer broke off while it was read/,
      },
      {
        name: "DNS failure (a .invalid host)",
        url: async () => "http://worker.invalid:9/",
        message: /Could not reach worker .*DNS lookup failed/,
      },
      {
        name: "TLS failure (https to a plain-HTTP worker)",
        url: async () => (await fake({})).url.replace("http:", "https:"),
        message: /Could not reach worker .*TLS failed/,
      },
      {
        name: "idle timeout (no answer)",
        url: async () => (await fake({ afterwards: "hang" })).url,
        message:
          /No answer from worker .* for 300 ms \(tier 2's idle timeout per try; a worker sends heartbeats while it works\)/,
        kind: "timeout",
        tryTimeoutMs: 300,
      },
    ];

  for (const c of classes) {
    it(`${c.name}: classified, retryable, counted; the breaker opens after ${FAILURES}`, async () => {
      const w = target(await c.url());
      for (let i = 1; i <= FAILURES; i++) {
        const err = await failure(
          client.execute(call(w, { policy: policy({ tryTimeoutMs: c.tryTimeoutMs ?? 5000 }) })),
        );
        expect(err.kind).toBe(c.kind ?? "network");
        expect(err.message).toMatch(c.message);
        expect(err.retryable).toBe(true);
        expect(err.countsAgainstWorker).toBe(true);
        expect(breakers.recent(w.id).failures).toBe(i);
      }
      expect(breakers.state(w.id)).toBe("open");
      expect(changes.find((ch) => ch.workerId === w.id)?.reason).toMatch(c.message);
      const refused = await failure(client.execute(call(w)));
      expect(refused.kind).toBe("breaker_open");
    });
  }

  it("within one attempt: a dead worker's three tries open its breaker, each try reported with the next wait", async () => {
    const w = target(await deadWorkerUrl());
    const tries: { n: number; kind: string; next: number | null }[] = [];
    const err = await failure(
      client.execute(
        call(w, {
          policy: policy({ tries: 5 }),
          onTryFailed: (n, e, next) => tries.push({ n, kind: e.kind, next }),
        }),
      ),
    );
    // Three refused tries open the breaker; the fourth is refused by the breaker and not retried.
    expect(tries.map((t) => t.kind)).toEqual(["network", "network", "network", "breaker_open"]);
    expect(tries.map((t) => t.next)).toEqual([1, 2, 4, null]);
    expect(err.kind).toBe("breaker_open");
    expect(breakers.state(w.id)).toBe("open");
  });

  it("a 4xx answer is the request's problem, not the worker's health: not counted, not retried", async () => {
    const f = await fake({ token: "secret" });
    const w = target(f.url);
    const err = await failure(client.execute(call(w, { policy: policy({ tries: 3 }) })));
    expect(err).toMatchObject({ kind: "http", status: 401, retryable: false, countsAgainstWorker: false });
    expect(f.requests).toHaveLength(0);
    expect(breakers.recent(w.id)).toEqual({ failures: 0, successes: 0, errorRate: 0 });
  });

  it("a worker URL outside WORKER_ALLOWED_HOSTS is refused before any request: not the worker's fault, not retried", async () => {
    const w = target("http://192.0.2.1:9/");
    const err = await failure(client.execute(call(w, { policy: policy({ tries: 3 }) })));
    expect(err).toMatchObject({ kind: "not_allowed", retryable: false, countsAgainstWorker: false });
    expect(err.message).toContain('Worker host "192.0.2.1" is not in WORKER_ALLOWED_HOSTS');
    expect(breakers.recent(w.id).failures).toBe(0);
  });

  it("a success is recorded too: the error rate is the failed share of recent calls", async () => {
    const f = await fake({ script: ["destroy"], afterwards: "ok" });
    const w = target(f.url);
    const outcome = await client.execute(call(w, { policy: policy({ tries: 2 }) }));
    expect(outcome.tries).toBe(2);
    expect(breakers.recent(w.id)).toEqual({ failures: 1, successes: 1, errorRate: 0.5 });
  });
});

describe("Retry-After", () => {
  it("a 503 with Retry-After: 1 waits at least a second before the next try, reported as the wait", async () => {
    const f = await fake({ script: ["503"], afterwards: "ok", retryAfter: "1" });
    const w = target(f.url);
    const reports: { n: number; status: number | undefined; retryAfterMs: number | undefined; next: number | null }[] =
      [];
    const outcome = await client.execute(
      call(w, {
        policy: policy({ tries: 3 }),
        onTryFailed: (n, e, next) => reports.push({ n, status: e.status, retryAfterMs: e.retryAfterMs, next }),
      }),
    );
    expect(outcome.tries).toBe(2);
    expect(reports).toEqual([{ n: 1, status: 503, retryAfterMs: 1000, next: 1000 }]);
    expect(f.requests).toHaveLength(2);
  });

  it("no try is sent while the worker's Retry-After runs: a cancel during it ends the attempt with one request sent", async () => {
    const f = await fake({ afterwards: "503", retryAfter: "30" });
    const w = target(f.url);
    const ctrl = new AbortController();
    const reports: (number | null)[] = [];
    const cancel = new WorkerCallError("canceled", "Canceled by the test.", {
      retryable: false,
      countsAgainstWorker: false,
    });
    const err = await failure(
      client.execute(
        call(w, {
          policy: policy({ tries: 3 }),
          signal: ctrl.signal,
          onTryFailed: (_n, _e, next) => {
            reports.push(next);
            // Long after p-retry's own backoff (≤ 5 ms here) would have sent the next try.
            setTimeout(() => ctrl.abort(cancel), 300);
          },
        }),
      ),
    );
    expect(reports).toEqual([30_000]);
    expect(err).toBe(cancel);
    expect(f.requests).toHaveLength(1);
  });

  it("a Retry-After past the task's deadline is not waited for: the attempt ends at once with the worker's error", async () => {
    const f = await fake({ afterwards: "503", retryAfter: "120" });
    const w = target(f.url);
    const reports: (number | null)[] = [];
    const err = await failure(
      client.execute(
        call(w, {
          policy: policy({ tries: 3 }),
          deadlineMs: 30_000,
          onTryFailed: (_n, _e, next) => reports.push(next),
        }),
      ),
    );
    expect(reports).toEqual([null]);
    expect(err.status).toBe(503);
    expect(err.message).toContain(
      "Not retried: the next try could not start before the task's deadline of 60 s (tier 2)",
    );
    expect(f.requests).toHaveLength(1);
  });
});

describe("the task's deadline is not the worker's fault", () => {
  it("a deadline that ends a running try names the policy, and neither counts toward the breaker nor is retried", async () => {
    const f = await fake({ durationMs: 30_000 });
    const w = target(f.url);
    const failed: WorkerCallError[] = [];
    const err = await failure(
      client.execute(
        call(w, {
          policy: policy({ tries: 3 }),
          spec: { budget: { maxDurationSec: 1 } },
          deadlineMs: 1000,
          onTryFailed: (_n, e) => failed.push(e),
        }),
      ),
    );
    expect(err.kind).toBe("deadline");
    expect(err.message).toBe("The task's deadline of 1 s (budget.maxDurationSec) passed.");
    expect(err.countsAgainstWorker).toBe(false);
    expect(failed.map((e) => e.kind)).toEqual(["deadline"]);
    expect(f.requests).toHaveLength(1);
    expect(breakers.recent(w.id).failures).toBe(0);
    expect(breakers.state(w.id)).toBe("closed");
  });

  it("the tier's deadline is named when the spec has no budget", async () => {
    const f = await fake({ durationMs: 30_000 });
    const err = await failure(
      client.execute(call(target(f.url), { policy: policy({ deadlineMs: 300_000 }), deadlineMs: 500 })),
    );
    expect(err.message).toBe("The task's deadline of 5 min (tier 2) passed.");
  });
});

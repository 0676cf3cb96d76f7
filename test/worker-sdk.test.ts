import { existsSync, mkdtempSync, readdirSync, realpathSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { workerHealthSchema } from "../src/shared/worker-protocol.js";
import {
  type CreateWorkerOptions,
  createWorker,
  type WorkerAbortError,
  type WorkerContext,
} from "../src/worker/sdk.js";
import { execute, executeRequest, postCancel, postExecute, readStream, waitFor } from "./helpers/worker.js";

const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (stops.length) await stops.pop()?.();
});

async function start(opts: Partial<CreateWorkerOptions> & Pick<CreateWorkerOptions, "handle">) {
  const worker = createWorker({ capabilities: ["script", "echo"], ...opts });
  const { url } = await worker.listen(0);
  stops.push(() => worker.close());
  return { worker, url };
}

/** A promise the test resolves by hand, to hold a handler at a known point without sleeping. */
function gate<T = void>() {
  let open!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    open = r;
  });
  return { promise, open };
}

const ok = (summary = "done") => ({ status: "completed" as const, summary, artifacts: [] });

describe("worker SDK: execute", () => {
  it("answers one JSON result with the run's log lines and a measured duration", async () => {
    const { url } = await start({
      handle: async ({ request, log, progress, workspace }) => {
        log("stdout", `hello ${request.spec.title}`);
        progress(50, "half");
        await workspace.write("out.txt", "x");
        return { ...ok(), artifacts: [{ path: "out.txt", operation: "create", content: "x" }] };
      },
    });
    const result = await execute(url, executeRequest({ title: "world" }));
    expect(result.status).toBe("completed");
    expect(result.logs).toEqual(["hello world"]);
    expect(result.artifacts).toEqual([{ path: "out.txt", operation: "create", content: "x" }]);
    expect(result.usage?.durationMs).toBeGreaterThanOrEqual(0);
  });

  it("streams NDJSON lines while the handler is still running, then one result line", async () => {
    const release = gate();
    const { url } = await start({
      handle: async ({ log, progress }) => {
        log("stderr", "first");
        progress(10, "started");
        await release.promise;
        log("info", "second");
        return ok("streamed");
      },
    });
    const res = await postExecute(url, executeRequest(), { stream: true });
    expect(res.headers.get("content-type")).toMatch(/application\/x-ndjson/);
    // The handler only finishes after the test has seen its first line: proof the lines are not buffered.
    const lines = await readStream(res, (line) => {
      if (line.type === "progress") release.open();
    });
    expect(lines).toEqual([
      { type: "log", stream: "stderr", line: "first" },
      { type: "progress", percent: 10, message: "started" },
      { type: "log", stream: "info", line: "second" },
      { type: "result", result: expect.objectContaining({ status: "completed", summary: "streamed" }) },
    ]);
    const last = lines.at(-1);
    expect(last?.type === "result" && last.result.logs).toBe(undefined);
  });

  it("gives each attempt an empty workspace under workspacesDir and removes it afterwards", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "sdk-ws-"));
    stops.push(async () => rmSync(dir, { recursive: true, force: true }));
    const seen: string[] = [];
    const { url } = await start({
      workspacesDir: dir,
      handle: async ({ request, workspace }) => {
        seen.push(workspace.root);
        expect(await workspace.list()).toEqual([]);
        await workspace.write("f.txt", String(request.attempt));
        expect(existsSync(path.join(workspace.root, "f.txt"))).toBe(true);
        return ok();
      },
    });
    const first = executeRequest();
    await execute(url, first);
    await execute(url, executeRequest({}, { taskId: first.taskId, attempt: 2 }));
    expect(seen).toEqual([
      path.join(realpathSync(dir), first.taskId, "1"),
      path.join(realpathSync(dir), first.taskId, "2"),
    ]);
    // Removal follows the answer, so wait for it rather than expect it at once.
    await waitFor(() => readdirSync(dir).length === 0, "the workspaces to be removed");
  });

  it("turns a throwing handler into a failed result and keeps serving", async () => {
    const { url } = await start({
      handle: async ({ request }) => {
        if (request.spec.title === "boom") throw new Error("disk on fire");
        return ok();
      },
    });
    const result = await execute(url, executeRequest({ title: "boom" }));
    expect(result.status).toBe("failed");
    expect(result.error).toEqual({ code: "handler_error", message: "Handler failed: disk on fire" });
    expect((await execute(url, executeRequest())).status).toBe("completed");
  });

  it("turns a result that breaks the protocol into a failed result naming the problem", async () => {
    const { url } = await start({ handle: async () => ({ status: "done", summary: 3 }) as never });
    const result = await execute(url, executeRequest());
    expect(result.status).toBe("failed");
    expect(result.error?.code).toBe("invalid_result");
    expect(result.error?.message).toMatch(/status/);
  });
});

describe("worker SDK: refusals", () => {
  it("requires the bearer token on execute and cancel when one is configured", async () => {
    let calls = 0;
    const { url } = await start({
      token: "s3cret-token",
      handle: async () => {
        calls++;
        return ok();
      },
    });
    const body = executeRequest();
    const missing = await postExecute(url, body);
    expect(missing.status).toBe(401);
    expect(missing.headers.get("www-authenticate")).toBe("Bearer");
    expect((await missing.json()).error).toMatch(/Missing Authorization/);
    const wrong = await postExecute(url, body, { token: "s3cret-tokex" });
    expect(wrong.status).toBe(401);
    expect(await wrong.text()).not.toContain("s3cret");
    expect((await postExecute(url, body, { token: "s3cret-token-longer" })).status).toBe(401);
    expect((await postCancel(url, { taskId: body.taskId, attempt: 1, reason: "x" }, "nope")).status).toBe(401);
    expect(calls).toBe(0);
    expect((await execute(url, body, { token: "s3cret-token" })).status).toBe("completed");
    expect(calls).toBe(1);
  });

  it("serves health without a token but refuses a wrong one", async () => {
    const { url } = await start({ token: "t0ken", version: "1.2.3", maxConcurrency: 3, handle: async () => ok() });
    const health = workerHealthSchema.parse(await (await fetch(`${url}/health`)).json());
    expect(health).toEqual({
      status: "ok",
      protocol: 1,
      capabilities: ["script", "echo"],
      inFlight: 0,
      maxConcurrency: 3,
      version: "1.2.3",
    });
    const wrong = await fetch(`${url}/health`, { headers: { authorization: "Bearer nope" } });
    expect(wrong.status).toBe(401);
    const right = await fetch(`${url}/health`, { headers: { authorization: "Bearer t0ken" } });
    expect(right.status).toBe(200);
  });

  it("answers 400 with a clear message for bad bodies and idempotency keys", async () => {
    let calls = 0;
    const { url } = await start({
      handle: async () => {
        calls++;
        return ok();
      },
    });
    const body = executeRequest();
    const cases: Array<[unknown, { key?: string | null }, RegExp]> = [
      ["{not json", { key: "x:1" }, /not valid JSON/],
      ["", { key: "x:1" }, /empty/],
      [{ ...body, protocol: 2 }, {}, /protocol/],
      [{ ...body, taskId: "not-a-uuid" }, {}, /taskId/],
      [{ ...body, attempt: 0 }, {}, /attempt/],
      [{ ...body, deadline: "tomorrow" }, {}, /deadline/],
      [{ ...body, spec: { ...body.spec, title: "" } }, {}, /spec\.title: Title is required/],
      [body, { key: null }, /Missing Idempotency-Key.*expected/],
      [body, { key: `${body.taskId}:2` }, /does not match the body/],
    ];
    for (const [payload, opts, message] of cases) {
      const res = await postExecute(url, payload, opts);
      expect(res.status, JSON.stringify(payload).slice(0, 80)).toBe(400);
      expect((await res.json()).error).toMatch(message);
    }
    expect(calls).toBe(0);
  });

  it("refuses an oversized body with 413, an unknown capability with 422, unknown routes and methods", async () => {
    const { url } = await start({ maxBodyBytes: 10_000, handle: async () => ok() });
    const big = executeRequest({ description: "x".repeat(9_999) });
    expect((await postExecute(url, big)).status).toBe(413);
    const other = await postExecute(url, executeRequest({ capability: "python" }));
    expect(other.status).toBe(422);
    expect((await other.json()).error).toMatch(/no 'python' capability \(it has: script, echo\)/);
    expect((await fetch(`${url}/nope`)).status).toBe(404);
    const wrongMethod = await fetch(`${url}/execute`);
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get("allow")).toBe("POST");
  });

  it("answers 429 with Retry-After at its concurrency limit, and accepts work again once a slot frees", async () => {
    const release = gate();
    const entered = gate();
    const { url, worker } = await start({
      maxConcurrency: 1,
      handle: async () => {
        entered.open();
        await release.promise;
        return ok();
      },
    });
    const first = execute(url, executeRequest());
    await entered.promise;
    expect(worker.inFlight()).toBe(1);
    const busy = await postExecute(url, executeRequest());
    expect(busy.status).toBe(429);
    expect(busy.headers.get("retry-after")).toBe("1");
    release.open();
    expect((await first).status).toBe("completed");
    await waitFor(() => worker.inFlight() === 0, "the slot to free");
    expect((await execute(url, executeRequest())).status).toBe("completed");
  });
});

describe("worker SDK: idempotency", () => {
  it("attaches a repeat to the run in progress and replays the result afterwards: one run per key", async () => {
    let calls = 0;
    const release = gate();
    const entered = gate();
    const { url } = await start({
      maxConcurrency: 1,
      handle: async ({ log }) => {
        calls++;
        log("stdout", "working");
        entered.open();
        await release.promise;
        return ok(`run ${calls}`);
      },
    });
    const body = executeRequest();
    const first = execute(url, body);
    await entered.promise;
    // At the concurrency limit, yet the repeat is not refused: it joins the same run.
    const streamed = postExecute(url, body, { stream: true }).then((r) => readStream(r));
    const second = execute(url, body);
    release.open();
    const [a, b, lines] = await Promise.all([first, second, streamed]);
    expect(a).toEqual(b);
    expect(a.summary).toBe("run 1");
    expect(lines[0]).toEqual({ type: "log", stream: "stdout", line: "working" });
    const third = await execute(url, body);
    expect(third).toEqual(a);
    const replayed = await readStream(await postExecute(url, body, { stream: true }));
    expect(replayed).toEqual(lines);
    expect(calls).toBe(1);
  });

  it("refuses a key reused with a different body with 409, but not a different deadline", async () => {
    const { url } = await start({ handle: async () => ok() });
    const body = executeRequest();
    await execute(url, body);
    const res = await postExecute(url, { ...body, spec: { ...body.spec, title: "something else" } });
    expect(res.status).toBe(409);
    expect((await res.json()).error).toMatch(/different request body/);
    // A fresher deadline on a retry of the same attempt is the same work.
    const retried = await postExecute(url, { ...body, deadline: new Date(Date.now() + 120_000).toISOString() });
    expect(retried.status).toBe(200);
  });
});

describe("worker SDK: aborts", () => {
  function abortRecorder() {
    const aborted = gate<WorkerAbortError>();
    const entered = gate<WorkerContext>();
    const handle = async (ctx: WorkerContext) => {
      entered.open(ctx);
      await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true }));
      aborted.open(ctx.signal.reason as WorkerAbortError);
      throw ctx.signal.reason;
    };
    return { aborted, entered, handle };
  }

  it("aborts the handler at the request's deadline and answers failed", async () => {
    const rec = abortRecorder();
    const { url } = await start({ handle: rec.handle });
    const result = await execute(url, executeRequest({}, { deadlineMs: 300 }));
    expect((await rec.aborted.promise).code).toBe("deadline_exceeded");
    expect(result.status).toBe("failed");
    expect(result.error?.code).toBe("deadline_exceeded");
  });

  it("answers failed without running when the deadline has already passed", async () => {
    let calls = 0;
    const { url } = await start({
      handle: async () => {
        calls++;
        return ok();
      },
    });
    const result = await execute(url, executeRequest({}, { deadlineMs: -1_000 }));
    expect(result.error?.code).toBe("deadline_exceeded");
    expect(calls).toBe(0);
  });

  it("keeps a run going when its client disconnects, and a repeat of the key re-attaches to it (an agency restart)", async () => {
    const release = gate();
    const entered = gate();
    let calls = 0;
    const { url } = await start({
      detachedGraceMs: 60_000,
      handle: async () => {
        calls++;
        entered.open();
        await release.promise;
        return ok("ran once");
      },
    });
    const body = executeRequest();
    const client = new AbortController();
    const first = postExecute(url, body, { signal: client.signal }).catch((e: Error) => e);
    await entered.promise;
    client.abort();
    expect(await first).toBeInstanceOf(Error);
    // The agency's next process sends the same key: it attaches to the run that went on.
    const repeat = execute(url, body);
    release.open();
    expect((await repeat).summary).toBe("ran once");
    expect(calls).toBe(1);
  });

  it("aborts the handler once its clients have been gone for detachedGraceMs, and lets a retry of the key run afresh", async () => {
    const rec = abortRecorder();
    let calls = 0;
    const { url } = await start({
      detachedGraceMs: 0,
      handle: async (ctx) => {
        calls++;
        if (calls === 1) return rec.handle(ctx);
        return ok("second try");
      },
    });
    const body = executeRequest();
    const client = new AbortController();
    const pending = postExecute(url, body, { signal: client.signal }).catch((e: Error) => e);
    await rec.entered.promise;
    client.abort();
    expect((await rec.aborted.promise).code).toBe("client_disconnected");
    expect(await pending).toBeInstanceOf(Error);
    const retry = await execute(url, body);
    expect(retry.summary).toBe("second try");
    expect(calls).toBe(2);
  });

  it("cancels a running handler: the canceler gets `canceled`, the executor a failed result", async () => {
    const rec = abortRecorder();
    const { url, worker } = await start({ handle: rec.handle });
    const body = executeRequest();
    const running = execute(url, body);
    await rec.entered.promise;
    const res = await postCancel(url, { taskId: body.taskId, attempt: 1, reason: "operator changed their mind" });
    expect(await res.json()).toEqual({ status: "canceled" });
    // `canceled` is only answered once the handler has returned.
    expect(worker.inFlight()).toBe(0);
    const result = await running;
    expect(result.error).toEqual({ code: "canceled", message: "Canceled: operator changed their mind" });
    const again = await postCancel(url, { taskId: body.taskId, attempt: 1, reason: "again" });
    expect(await again.json()).toEqual({ status: "not_running" });
  });

  it("remembers a cancel that arrives before its execute, and validates cancel bodies", async () => {
    let calls = 0;
    const { url } = await start({
      handle: async () => {
        calls++;
        return ok();
      },
    });
    const body = executeRequest();
    const res = await postCancel(url, { taskId: body.taskId, attempt: 1, reason: "too late" });
    expect(await res.json()).toEqual({ status: "not_running" });
    const result = await execute(url, body);
    expect(result.error?.code).toBe("canceled");
    expect(calls).toBe(0);
    const bad = await postCancel(url, { taskId: "x", attempt: 1 });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error).toMatch(/taskId.*reason/s);
  });

  it("answers failed after the grace period when a handler ignores its signal, still counting it in flight", async () => {
    const release = gate();
    const entered = gate();
    const { url, worker } = await start({
      abortGraceMs: 100,
      handle: async () => {
        entered.open();
        await release.promise;
        return ok();
      },
    });
    const body = executeRequest();
    const running = execute(url, body);
    await entered.promise;
    await postCancel(url, { taskId: body.taskId, attempt: 1, reason: "stop" });
    const result = await running;
    expect(result.error?.code).toBe("canceled");
    expect(result.error?.message).toMatch(/did not stop within 100 ms/);
    expect(worker.inFlight()).toBe(1);
    release.open();
    await waitFor(() => worker.inFlight() === 0, "the stubborn handler to return");
  });

  it("aborts running handlers on close()", async () => {
    const rec = abortRecorder();
    const worker = createWorker({ capabilities: ["script"], handle: rec.handle });
    const { url } = await worker.listen(0);
    const running = execute(url, executeRequest());
    await rec.entered.promise;
    await worker.close();
    expect((await rec.aborted.promise).code).toBe("shutdown");
    expect((await running).error?.code).toBe("shutdown");
  });
});

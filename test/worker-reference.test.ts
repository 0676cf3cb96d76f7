import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StreamLine } from "../src/shared/worker-protocol.js";
import { executeResultSchema, workerHealthSchema } from "../src/shared/worker-protocol.js";
import { createReferenceWorker, DEFAULT_MAX_RESULT_CHARS } from "../src/worker/reference.js";
import type { Worker } from "../src/worker/sdk.js";
import {
  execute,
  executeRequest,
  hostPidsWith,
  isProcessAlive,
  postCancel,
  postExecute,
  readStream,
  startReferenceWorkerProcess,
  uniqueSleep,
  waitFor,
} from "./helpers/worker.js";

let worker: Worker;
let url: string;
beforeAll(async () => {
  worker = createReferenceWorker({ killGraceMs: 300, maxConcurrency: 8 });
  ({ url } = await worker.listen(0));
});
afterAll(() => worker.close());

const script = (s: string, extra: Record<string, unknown> = {}) => ({ input: { script: s, ...extra } });
/**
 * Runs `sleep` in the background and says "grandchild started" only once that process has exec'd sleep (until then
 * its command line is still bash's, and a test looking for it on the host would find nothing), then waits for it.
 */
const startedOnceExeced = (sleep: string) =>
  `${sleep} & until tr '\\0' ' ' < /proc/$!/cmdline | grep -q '^sleep '; do :; done; echo "grandchild started"; wait`;
/** The script printed that its grandchild started, and no process with that command line is left on the host. */
const expectGrandchildGone = async (logs: string[] | undefined, sleep: string) => {
  expect(logs).toContain("grandchild started");
  await waitFor(() => hostPidsWith(sleep).length === 0, `'${sleep}' to be gone`);
};

describe("reference worker: files and artifacts", () => {
  it("reports created, modified and deleted files with content and unified diffs", async () => {
    const result = await execute(
      url,
      executeRequest(
        script(
          "printf 'one\\nTWO\\nthree\\nfour\\n' > keep.txt && rm gone.txt && mkdir -p src && echo 'new file' > src/new.ts",
          {
            files: { "keep.txt": "one\ntwo\nthree\n", "gone.txt": "bye\n", "same.txt": "unchanged\n" },
          },
        ),
      ),
    );
    expect(result.status).toBe("completed");
    expect(result.summary).toBe("Script exited with code 0; 1 created, 1 modified, 1 deleted");
    expect(result.artifacts).toEqual([
      {
        path: "gone.txt",
        operation: "delete",
        diff: "--- a/gone.txt\n+++ /dev/null\n@@ -1,1 +0,0 @@\n-bye\n",
      },
      {
        path: "keep.txt",
        operation: "modify",
        content: "one\nTWO\nthree\nfour\n",
        diff: "--- a/keep.txt\n+++ b/keep.txt\n@@ -1,3 +1,4 @@\n one\n-two\n+TWO\n three\n+four\n",
      },
      {
        path: "src/new.ts",
        operation: "create",
        content: "new file\n",
        diff: "--- /dev/null\n+++ b/src/new.ts\n@@ -0,0 +1,1 @@\n+new file\n",
      },
    ]);
    expect(result.usage?.durationMs).toBeGreaterThanOrEqual(0);
  });

  it("streams stdout and stderr line by line, in order, as NDJSON", async () => {
    const res = await postExecute(url, executeRequest(script("echo out1; echo err1 >&2; printf 'partial'")), {
      stream: true,
    });
    const lines = await readStream(res);
    const logs = lines.filter(
      (l): l is Extract<StreamLine, { type: "log" }> => l.type === "log" && l.stream !== "info",
    );
    expect(logs.filter((l) => l.stream === "stdout").map((l) => l.line)).toEqual(["out1", "partial"]);
    expect(logs.filter((l) => l.stream === "stderr").map((l) => l.line)).toEqual(["err1"]);
    expect(lines.some((l) => l.type === "progress")).toBe(true);
    const last = lines.at(-1);
    expect(last?.type).toBe("result");
    expect(last?.type === "result" && last.result.status).toBe("completed");
  });

  it("does not follow symlinks into artifacts, and marks binary files without content", async () => {
    const result = await execute(
      url,
      executeRequest(script("ln -s /etc/hostname leak && ln -s / root && printf 'a\\000b' > blob.bin")),
    );
    expect(result.status).toBe("completed");
    expect(result.artifacts).toEqual([{ path: "blob.bin", operation: "create" }]);
  });

  it("refuses seed files that would leave the workspace", async () => {
    const result = await execute(url, executeRequest(script("true", { files: { "../escape.txt": "x" } })));
    expect(result.status).toBe("failed");
    expect(result.error?.code).toBe("workspace_path");
    expect(result.error?.message).toMatch(/'\.\.' segments/);
  });

  it("fails with a clear error when spec.input.script is missing", async () => {
    const result = await execute(url, executeRequest({ input: { command: "ls" } }));
    expect(result.status).toBe("failed");
    expect(result.error?.code).toBe("invalid_input");
    expect(result.error?.message).toMatch(/spec\.input\.script/);
  });

  it("fails on a non-zero exit, keeping the output and the files changed so far", async () => {
    const result = await execute(
      url,
      executeRequest(script("echo partial > half.txt; echo 'no such thing' >&2; exit 3")),
    );
    expect(result.status).toBe("failed");
    expect(result.error).toEqual({
      code: "script_failed",
      message: "Script exited with code 3; 1 created, 0 modified, 0 deleted",
    });
    expect(result.logs).toContain("no such thing");
    expect(result.artifacts.map((a) => a.path)).toEqual(["half.txt"]);
    expect(result.checks).toBeUndefined();
  });

  it("gives scripts a minimal environment with the task's identity, not the worker's", async () => {
    process.env.WORKER_SECRET_FOR_TEST = "leaky";
    try {
      const body = executeRequest(
        script(`echo "id=$TASK_ID attempt=$TASK_ATTEMPT secret=\${WORKER_SECRET_FOR_TEST:-none}"`),
      );
      const result = await execute(url, body);
      expect(result.logs).toContain(`id=${body.taskId} attempt=1 secret=none`);
    } finally {
      delete process.env.WORKER_SECRET_FOR_TEST;
    }
  });
});

describe("reference worker: acceptance checks", () => {
  it("runs each command check in the workspace and reports pass and fail with exit code and output", async () => {
    const result = await execute(
      url,
      executeRequest({
        input: { script: "echo 'hello world' > greeting.txt" },
        acceptanceCriteria: [
          { text: "greeting exists", check: { kind: "command", command: "grep -q hello greeting.txt" } },
          { text: "reviewed by a human" },
          {
            text: "mentions mars",
            check: { kind: "command", command: "grep mars greeting.txt || { echo 'no mars here'; exit 4; }" },
          },
          { text: "pattern is not the worker's job", check: { kind: "pattern", pattern: "hello" } },
        ],
      }),
    );
    expect(result.status).toBe("completed");
    expect(result.checks).toEqual([
      { criterion: 0, passed: true, exitCode: 0, output: "" },
      { criterion: 2, passed: false, exitCode: 4, output: "no mars here\n" },
    ]);
    expect(result.summary).toMatch(/checks 1\/2 passed/);
  });

  it("relays a check's output holding a NUL as U+FFFD, so the result stays valid text", async () => {
    const result = await execute(
      url,
      executeRequest({
        input: { script: "true" },
        acceptanceCriteria: [{ text: "nul", check: { kind: "command", command: "printf 'a\\000b\\n'" } }],
      }),
    );
    expect(result.status).toBe("completed");
    expect(result.checks).toEqual([{ criterion: 0, passed: true, exitCode: 0, output: "a\uFFFDb\n" }]);
  });
});

describe("reference worker: result size", () => {
  it("leaves out content past DEFAULT_MAX_RESULT_CHARS, so the answer stays under the agency's 8 MiB read cap", async () => {
    // 25 files of 400,000 characters: 20 M characters of content and diffs, each file under the per-diff limit.
    const result = await execute(
      url,
      executeRequest(
        script("for i in $(seq 10 34); do head -c 400000 /dev/zero | tr '\\0' 'a' > f$i.txt; done; echo x > small.txt"),
      ),
    );
    expect(result.status).toBe("completed");
    expect(result.artifacts).toHaveLength(26);
    const withContent = result.artifacts?.filter((a) => a.content !== undefined) ?? [];
    expect(withContent.length).toBeGreaterThan(0);
    expect(withContent.length).toBeLessThan(26);
    expect(Buffer.byteLength(JSON.stringify(result))).toBeLessThan(DEFAULT_MAX_RESULT_CHARS * 2);
  });
});

describe("reference worker: stopping scripts", () => {
  it("kills the whole process group when the script exceeds budget.maxDurationSec", async () => {
    const sleep = uniqueSleep();
    const result = await execute(
      url,
      executeRequest({
        input: { script: `${sleep} & echo "grandchild started"; wait` },
        budget: { maxDurationSec: 1 },
      }),
    );
    expect(result.status).toBe("failed");
    expect(result.error?.code).toBe("timeout");
    expect(result.error?.message).toMatch(/budget\.maxDurationSec/);
    await expectGrandchildGone(result.logs, sleep);
  });

  it("escalates to SIGKILL when the script ignores SIGTERM, and fails at the deadline", async () => {
    const sleep = uniqueSleep();
    const result = await execute(
      url,
      executeRequest(script(`trap '' TERM; ${sleep} & echo "grandchild started"; while true; do sleep 1; done`), {
        deadlineMs: 1_500,
      }),
    );
    expect(result.status).toBe("failed");
    expect(result.error?.code).toBe("deadline_exceeded");
    await expectGrandchildGone(result.logs, sleep);
  });

  it("stops processes a successful script leaves behind", async () => {
    const sleep = uniqueSleep();
    const result = await execute(url, executeRequest(script(`(${sleep} & echo "grandchild started") ; echo done`)));
    expect(result.status).toBe("completed");
    await expectGrandchildGone(result.logs, sleep);
  });

  it("cancels mid-run: the group is killed, cancel answers canceled and the stream ends failed", async () => {
    const sleep = uniqueSleep();
    const body = executeRequest(script(startedOnceExeced(sleep)));
    const res = await postExecute(url, body, { stream: true });
    let canceled: Promise<Response> | undefined;
    const lines = await readStream(res, (line) => {
      if (line.type === "log" && line.line === "grandchild started") {
        expect(hostPidsWith(sleep)).toHaveLength(1);
        canceled = postCancel(url, { taskId: body.taskId, attempt: 1, reason: "wrong task" });
      }
    });
    expect(await (await canceled)?.json()).toEqual({ status: "canceled" });
    const last = lines.at(-1);
    if (last?.type !== "result") throw new Error("stream did not end with a result");
    expect(last.result.status).toBe("failed");
    expect(last.result.error?.code).toBe("canceled");
    expect(last.result.error?.message).toMatch(/wrong task.*process group was killed/);
    await waitFor(() => hostPidsWith(sleep).length === 0, `'${sleep}' to be gone`);
  });
});

describe("reference worker as a child process (npm run worker)", () => {
  it("prints its URL, enforces its token, runs a task and shuts down gracefully on SIGTERM", async () => {
    const proc = await startReferenceWorkerProcess({
      env: { WORKER_TOKEN: "child-token", WORKER_CAPABILITIES: "script, shell", WORKER_MAX_CONCURRENCY: "2" },
    });
    try {
      expect(isProcessAlive(proc.pid)).toBe(true);
      const health = workerHealthSchema.parse(await (await fetch(`${proc.url}/health`)).json());
      expect(health).toMatchObject({ status: "ok", capabilities: ["script", "shell"], maxConcurrency: 2 });

      const unauthorized = await postExecute(proc.url, executeRequest(script("true")));
      expect(unauthorized.status).toBe(401);

      const token = { token: "child-token" };
      const result = await execute(
        proc.url,
        executeRequest(script(`echo "token=\${WORKER_TOKEN:-none}" > t.txt`)),
        token,
      );
      expect(result.artifacts).toEqual([expect.objectContaining({ path: "t.txt", content: "token=none\n" })]);

      // SIGTERM while a task runs: the task is aborted (its group killed), answered, and the process exits 0.
      const sleep = uniqueSleep();
      const body = executeRequest(script(startedOnceExeced(sleep)));
      const res = await postExecute(proc.url, body, { ...token, stream: true });
      const lines = await readStream(res, (line) => {
        if (line.type === "log" && line.line === "grandchild started") {
          expect(hostPidsWith(sleep)).toHaveLength(1);
          proc.kill("SIGTERM");
        }
      });
      const last = lines.at(-1);
      expect(last?.type === "result" && executeResultSchema.parse(last.result).error?.code).toBe("shutdown");
      expect(await proc.exited).toEqual({ code: 0, signal: null });
      await waitFor(() => hostPidsWith(sleep).length === 0, `'${sleep}' to be gone`);
      const logged = proc.output.map((l) => JSON.parse(l) as { msg?: string });
      expect(logged.some((l) => l.msg === "stopped")).toBe(true);
      expect(proc.output.join("\n")).not.toContain("child-token");
    } finally {
      await proc.stop();
    }
  });

  it("refuses to start on a bad configuration, naming the variable", async () => {
    await expect(startReferenceWorkerProcess({ env: { WORKER_MAX_CONCURRENCY: "0" } })).rejects.toThrow(
      /WORKER_MAX_CONCURRENCY/,
    );
    await expect(startReferenceWorkerProcess({ env: { WORKER_CAPABILITIES: "Bad Name" } })).rejects.toThrow(
      /WORKER_CAPABILITIES/,
    );
  });
});

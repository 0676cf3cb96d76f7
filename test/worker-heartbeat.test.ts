import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { StreamLine } from "../src/shared/worker-protocol.js";
import { createWorker } from "../src/worker/sdk.js";
import {
  execute,
  executeRequest,
  postExecute,
  type ReferenceWorkerProcess,
  readStream,
  startReferenceWorkerProcess,
  waitFor,
} from "./helpers/worker.js";

const stops: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (stops.length) await stops.pop()?.();
});

function gate() {
  let open!: () => void;
  const promise = new Promise<void>((r) => {
    open = r;
  });
  return { promise, open };
}

const ok = { status: "completed" as const, summary: "done", artifacts: [] };
const heartbeats = (lines: StreamLine[]) => lines.filter((l) => l.type === "heartbeat").length;

/** Reads a stream in the background, keeping every line as it arrives. */
function follow(res: Response) {
  const lines: StreamLine[] = [];
  const done = readStream(res, (l) => lines.push(l));
  return { lines, done };
}

describe("worker SDK: heartbeats on a quiet stream", () => {
  it("sends heartbeat lines while the handler is quiet, stops at the result, and stores none", async () => {
    const release = gate();
    const worker = createWorker({
      capabilities: ["script"],
      heartbeatMs: 40,
      handle: async ({ log }) => {
        log("stdout", "before the quiet part");
        await release.promise;
        log("stdout", "after the quiet part");
        return ok;
      },
    });
    const { url } = await worker.listen(0);
    stops.push(() => worker.close());
    const body = executeRequest();

    const first = follow(await postExecute(url, body, { stream: true }));
    await waitFor(() => heartbeats(first.lines) >= 3, "three heartbeats on the first stream");
    // A repeat of the same Idempotency-Key attaches to the running work: it gets the run's lines replayed (no
    // heartbeat among them: they are not part of the run) and then heartbeats of its own.
    const second = follow(await postExecute(url, body, { stream: true }));
    await waitFor(() => heartbeats(second.lines) >= 2, "two heartbeats on the attached stream");
    expect(second.lines[0]).toEqual({ type: "log", stream: "stdout", line: "before the quiet part" });

    release.open();
    const [a, b] = await Promise.all([first.done, second.done]);
    for (const lines of [a, b]) {
      const last = lines.at(-1);
      expect(last?.type === "result" && last.result.status).toBe("completed");
      expect(lines.filter((l) => l.type === "log").map((l) => l.type === "log" && l.line)).toEqual([
        "before the quiet part",
        "after the quiet part",
      ]);
    }

    // The finished run, asked again: its stored lines and its JSON logs hold no heartbeat.
    const replay = await readStream(await postExecute(url, body, { stream: true }));
    expect(heartbeats(replay)).toBe(0);
    expect(replay.map((l) => l.type)).toEqual(["log", "log", "result"]);
    const json = await execute(url, body);
    expect(json.logs).toEqual(["before the quiet part", "after the quiet part"]);
  });

  it("a client that disconnects leaves the other client's heartbeats going", async () => {
    const release = gate();
    const worker = createWorker({
      capabilities: ["script"],
      heartbeatMs: 30,
      handle: async () => {
        await release.promise;
        return ok;
      },
    });
    const { url } = await worker.listen(0);
    stops.push(() => worker.close());
    const body = executeRequest();
    const leaving = new AbortController();
    const a = follow(await postExecute(url, body, { stream: true, signal: leaving.signal }));
    const b = follow(await postExecute(url, body, { stream: true }));
    await waitFor(() => heartbeats(a.lines) >= 1 && heartbeats(b.lines) >= 1, "heartbeats on both streams");
    leaving.abort();
    await expect(a.done).rejects.toThrow();
    const seen = heartbeats(b.lines);
    await waitFor(() => heartbeats(b.lines) >= seen + 3, "more heartbeats on the stream that stayed");
    release.open();
    const lines = await b.done;
    expect(lines.at(-1)?.type).toBe("result");
  });

  it("rejects a heartbeat interval that is not a whole number of milliseconds", () => {
    expect(() => createWorker({ capabilities: ["x"], heartbeatMs: -1, handle: () => ok })).toThrow(/heartbeatMs/);
    expect(() => createWorker({ capabilities: ["x"], heartbeatMs: 2 ** 31, handle: () => ok })).toThrow(/heartbeatMs/);
  });
});

describe("reference worker process: WORKER_HEARTBEAT_MS", () => {
  const workspaces = mkdtempSync(path.join(os.tmpdir(), "worker-heartbeat-"));
  let proc: ReferenceWorkerProcess | undefined;
  afterAll(async () => {
    await proc?.stop();
    rmSync(workspaces, { recursive: true, force: true });
  });

  it("a script that prints nothing gets heartbeat lines at the configured interval, then its result", async () => {
    proc = await startReferenceWorkerProcess({
      env: { WORKER_HEARTBEAT_MS: "100", WORKER_WORKSPACES_DIR: workspaces },
    });
    // The script waits, silent, until the test drops a file into its workspace.
    const body = executeRequest({ input: { script: "until [ -f go ]; do sleep 0.02; done; echo finished" } });
    const workspace = path.join(workspaces, body.taskId, "1");
    const s = follow(await postExecute(proc.url, body, { stream: true }));
    await waitFor(() => heartbeats(s.lines) >= 3, "three heartbeats while the script is quiet", 20_000);
    // Only heartbeats since the script started: the quiet part produced no other line.
    const sinceStart = s.lines.slice(s.lines.findIndex((l) => l.type === "progress" && l.message === "script started"));
    expect(sinceStart.slice(1).every((l) => l.type === "heartbeat")).toBe(true);
    expect(existsSync(workspace)).toBe(true);
    writeFileSync(path.join(workspace, "go"), "");
    const lines = await s.done;
    const last = lines.at(-1);
    expect(last?.type === "result" && last.result.status).toBe("completed");
    expect(lines.some((l) => l.type === "log" && l.line === "finished")).toBe(true);
  });
});

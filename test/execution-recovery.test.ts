import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createTRPCClient, httpBatchLink } from "@trpc/client";
import superjson from "superjson";
import { afterAll, describe, expect, it } from "vitest";
import type { AppRouter } from "../src/server/router.js";
import { TERMINAL_STATES } from "../src/shared/task-state.js";
import { DATABASES, POSTGRES_URL } from "./helpers/databases.js";
import { ADMIN_TOKEN, FAST_ENV, type FaultWorker, startFaultWorker, waitFor } from "./helpers/fault-worker.js";

interface ServerProcess {
  url: string;
  child: ChildProcess;
  exited: Promise<void>;
}

/** The real server (`src/server/main.ts`) as its own process, so it can be killed with SIGKILL. */
function startServer(env: Record<string, string>): Promise<ServerProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/server/main.ts"], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve, reject) => {
    let buffered = "";
    const timer = setTimeout(() => reject(new Error(`server did not start: ${stderr}`)), 60_000);
    void exited.then(() => reject(new Error(`server exited before listening: ${stderr}`)));
    child.stdout?.on("data", (d: Buffer) => {
      buffered += d.toString();
      for (const line of buffered.split("\n")) {
        const port = /"port":(\d+)/.exec(line)?.[1];
        if (port && line.includes("serving the console")) {
          clearTimeout(timer);
          resolve({ url: `http://127.0.0.1:${port}`, child, exited });
        }
      }
      buffered = buffered.slice(buffered.lastIndexOf("\n") + 1);
    });
  });
}

describe.each(DATABASES)("recovery after the server is killed (SIGKILL) on %s", (kind) => {
  let worker: FaultWorker;
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "agency-recovery-"));
  const servers: ServerProcess[] = [];
  afterAll(async () => {
    for (const s of servers) s.child.kill("SIGKILL");
    await Promise.all(servers.map((s) => s.exited));
    await worker?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("recovers every task: none lost, none left running, none executed twice or concurrently", async () => {
    worker = await startFaultWorker({ durationMs: 1500 });
    const schema = `t_recovery_${randomBytes(4).toString("hex")}`;
    const env: Record<string, string> = {
      ...FAST_ENV,
      PORT: "0",
      HOST: "127.0.0.1",
      LOG_LEVEL: "info",
      WEB_DIST_DIR: "/nonexistent",
      START_REFERENCE_WORKER: "0",
      DATA_DIR: dataDir,
      LEASE_MS: "1500",
      RECOVERY_INTERVAL_MS: "300",
      WORKERS: `counter=${worker.url}|script|3`,
      ...(kind === "postgres" ? { DATABASE_URL: POSTGRES_URL as string, DATABASE_SCHEMA: schema } : {}),
    };
    const client = (url: string) =>
      createTRPCClient<AppRouter>({
        links: [
          httpBatchLink({
            url: `${url}/trpc`,
            transformer: superjson,
            headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
          }),
        ],
      });

    const first = await startServer(env);
    servers.push(first);
    let api = client(first.url);
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) {
      ids.push((await api.tasks.create.mutate({ title: `survive ${i}`, input: { script: "true" } })).id);
    }
    const running = await waitFor(
      "attempts to run",
      async () => (await api.tasks.list.query({ filter: { states: ["running"] } })).items.length,
      (n) => n > 0,
    );
    expect(running).toBeGreaterThan(0);
    first.child.kill("SIGKILL");
    await first.exited;

    const second = await startServer(env);
    servers.push(second);
    api = client(second.url);
    const tasks = await waitFor(
      "every task to settle after the restart",
      () => Promise.all(ids.map((id) => api.tasks.get.query({ id }))),
      (ts) => ts.every((t) => TERMINAL_STATES.includes(t.state)),
      60_000,
    );
    expect(tasks.map((t) => t.state)).toEqual(ids.map(() => "accepted"));
    // The attempts the killed process held were re-attached by the next one as the same attempts
    // (same Idempotency-Key): none lost, none counted, none run again.
    for (const t of tasks) {
      expect(t.attempts.map((a) => [a.number, a.state])).toEqual([[1, "completed"]]);
      expect(t.failures).toBe(0);
    }
    const resent = [...worker.executions.keys()].filter(
      (key) => worker.requests.filter((r) => `${r.taskId}:${r.attempt}` === key).length > 1,
    );
    expect(resent.length).toBeGreaterThan(0);
    // At the worker: each idempotency key started once, and no task ever had two attempts running at once.
    expect([...worker.executions.values()].every((n) => n === 1)).toBe(true);
    expect([...worker.maxConcurrentPerTask.values()].every((n) => n === 1)).toBe(true);
    expect(worker.cancels).toEqual([]);
    second.child.kill("SIGTERM");
    await second.exited;
  }, 120_000);
});

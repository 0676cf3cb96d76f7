import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { type ClusterNode, startSoloServer } from "./helpers/cluster.js";
import { hostPidsWith, isProcessAlive, uniqueSleep, waitFor } from "./helpers/worker.js";

/** Live children of `ppid` whose command line contains `needle`. */
function childrenWith(ppid: number, needle: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const status = readFileSync(`/proc/${name}/status`, "utf8");
      if (Number(/^PPid:\s+(\d+)/m.exec(status)?.[1]) !== ppid) continue;
      const cmdline = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0").join(" ");
      if (cmdline.includes(needle) && isProcessAlive(Number(name))) pids.push(Number(name));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}

describe.each(["bubblewrap", "off"])(
  "the built-in reference worker (WORKER_SANDBOX=%s) dies with its server",
  (sandbox) => {
    let server: (ClusterNode & { dispose(): Promise<void> }) | undefined;
    const leftovers: number[] = [];
    afterEach(async () => {
      await server?.dispose();
      // Whatever this test found still alive must not outlive it either.
      for (const pid of leftovers) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone
        }
      }
    });

    it("a SIGKILL of the server leaves neither the worker nor the script it ran", async () => {
      server = await startSoloServer({ WORKER_SANDBOX: sandbox, DISPATCH_INTERVAL_MS: "50" });
      const s = server;
      const serverPid = s.child.pid as number;
      const workers = childrenWith(serverPid, "src/worker/main.ts");
      expect(workers).toHaveLength(1);
      const workerPid = workers[0] as number;

      const sleep = uniqueSleep();
      await s.api.tasks.create.mutate({
        title: "Sleep past the server",
        input: { script: `echo sleeping; ${sleep}` },
      });
      // The script's sleep, found on the host by its unique command line (hostPidsWith: so not the shell running it).
      await waitFor(() => hostPidsWith(sleep).length > 0, "the script's sleep to run", 30_000);
      const sleeps = hostPidsWith(sleep);
      expect(sleeps.length).toBeGreaterThan(0);
      leftovers.push(workerPid, ...sleeps);

      s.child.kill("SIGKILL");
      await s.exited;
      await waitFor(
        () => !isProcessAlive(workerPid) && hostPidsWith(sleep).length === 0,
        `the orphaned reference worker (pid ${workerPid}) and '${sleep}' to be gone`,
        30_000,
      );
    }, 300_000);
  },
);

describe("the built-in reference worker with nothing to do", () => {
  let server: (ClusterNode & { dispose(): Promise<void> }) | undefined;
  let workerPid: number | undefined;
  afterEach(async () => {
    await server?.dispose();
    if (workerPid !== undefined && isProcessAlive(workerPid)) process.kill(workerPid, "SIGKILL");
  });

  it("exits too when its server is SIGKILLed (its last log lines lead nowhere)", async () => {
    server = await startSoloServer();
    const s = server;
    const workers = childrenWith(s.child.pid as number, "src/worker/main.ts");
    expect(workers).toHaveLength(1);
    workerPid = workers[0] as number;
    s.child.kill("SIGKILL");
    await s.exited;
    const pid = workerPid;
    await waitFor(() => !isProcessAlive(pid), `the idle reference worker (pid ${pid}) to be gone`, 30_000);
  }, 300_000);
});

describe("a worker process that exits", () => {
  it("takes the process groups of the scripts it still runs with it, whichever way it exits", async () => {
    const sleep = uniqueSleep();
    // runProcess starts its child as the leader of a group of its own (detached): it would outlive this process.
    const program = `
      import { runProcess } from "./src/worker/process.ts";
      void runProcess({
        file: "bash", args: ["-c", ${JSON.stringify(`${sleep}; true`)}], cwd: "/", env: { PATH: process.env.PATH },
        timeoutMs: 600_000, killGraceMs: 1_000, maxLineChars: 1_000, onLine() {},
      });
      const wait = setInterval(() => {}, 1_000);
      process.stdin.once("data", () => { clearInterval(wait); process.exit(0); });
    `;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", program], {
      stdio: ["pipe", "ignore", "inherit"],
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      await waitFor(() => hostPidsWith(sleep).length > 0, "the script's sleep to run", 30_000);
      child.stdin?.write("exit\n");
      expect(await exited).toBe(0);
      await waitFor(() => hostPidsWith(sleep).length === 0, `'${sleep}' to be gone with its worker`, 10_000);
    } finally {
      child.kill("SIGKILL");
      for (const pid of hostPidsWith(sleep)) process.kill(pid, "SIGKILL");
    }
  }, 60_000);
});

describe("a reference worker whose server dies while it is still loading", () => {
  it("exits instead of living on without a parent", async () => {
    // A parent that starts the worker with the IPC lifeline, prints its pid and exits at once: the channel closes
    // long before the worker (loading through tsx) gets to listen.
    const parent = spawn(
      process.execPath,
      [
        "-e",
        `const { spawn } = require("node:child_process");
         const c = spawn(process.execPath, ["--import", "tsx", "src/worker/main.ts"], {
           stdio: ["ignore", "ignore", "ignore", "ipc"],
           env: { ...process.env, WORKER_PORT: "0", WORKER_SANDBOX: "off", WORKER_LIFELINE: "ipc" },
         });
         c.unref(); c.channel?.unref();
         process.stdout.write(String(c.pid));
         process.exit(0);`,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let out = "";
    parent.stdout.on("data", (b: Buffer) => {
      out += b.toString();
    });
    await new Promise((resolve) => parent.once("exit", resolve));
    const pid = Number(out);
    expect(pid).toBeGreaterThan(0);
    try {
      await waitFor(() => !isProcessAlive(pid), "the orphaned worker to exit", 30_000);
    } finally {
      if (isProcessAlive(pid)) process.kill(pid, "SIGKILL");
    }
  });
});

import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ExecuteResult } from "../src/shared/worker-protocol.js";
import { workerHealthSchema } from "../src/shared/worker-protocol.js";
import { DATABASES } from "./helpers/databases.js";
import { actor, harness } from "./helpers/services.js";
import { execute, executeRequest, type ReferenceWorkerProcess, startReferenceWorkerProcess } from "./helpers/worker.js";

/**
 * Escape attempts through the real reference worker (`npm run worker` as a child process, over HTTP): each script
 * would succeed unconfined (as it did before the sandbox) and must be refused or contained, with the attempt's
 * error saying what happened.
 */

const TOKEN = `worker-token-${randomBytes(8).toString("hex")}`;
const SECRET = `server-secret-${randomBytes(8).toString("hex")}`;
const KEY = `master-key-${randomBytes(16).toString("hex")}`;

let dataDir: string;
let keyFile: string;
let worker: ReferenceWorkerProcess;
const auth = { token: TOKEN };

const script = (s: string, extra: Record<string, unknown> = {}) => ({ input: { script: s, ...extra } });
const run = (s: string, spec: Record<string, unknown> = {}) =>
  execute(worker.url, executeRequest({ ...script(s), ...spec }), auth);
/** Everything the agency would store and show of an attempt. */
const shown = (r: ExecuteResult) => JSON.stringify(r);

/** A TCP server on the host's loopback that counts the connections it accepts. */
async function listeningServer(): Promise<{ port: number; accepted: () => number; close: () => Promise<void> }> {
  let count = 0;
  const server = net.createServer((socket) => {
    count++;
    socket.end("hello from the host\n");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return { port, accepted: () => count, close: () => new Promise((r) => server.close(() => r())) };
}

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), "sandbox-test-data-"));
  keyFile = path.join(dataDir, "master.key");
  writeFileSync(keyFile, KEY, { mode: 0o600 });
  worker = await startReferenceWorkerProcess({
    env: {
      DATA_DIR: dataDir,
      WORKER_TOKEN: TOKEN,
      SANDBOX_TEST_SECRET: SECRET,
      WORKER_SANDBOX_MAX_PROCESSES: "64",
      WORKER_SANDBOX_MEMORY_MB: "256",
      WORKER_SANDBOX_MAX_FILE_MB: "16",
      WORKER_SANDBOX_MAX_WORKSPACE_MB: "40",
      WORKER_SANDBOX_TMP_MB: "32",
    },
  });
});
afterAll(async () => {
  await worker?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe("sandbox: what a script can see", () => {
  it("reports itself sandboxed on /health", async () => {
    const health = workerHealthSchema.parse(await (await fetch(`${worker.url}/health`)).json());
    expect(health.sandbox).toBe("bubblewrap");
  });

  it("cannot read the master key by its absolute path", async () => {
    const result = await run(`cat ${keyFile} > leak.txt; cat ${keyFile}; ls ${dataDir}`);
    expect(result.status).toBe("failed");
    expect(result.error?.code).toBe("script_failed");
    expect(result.logs?.join("\n")).toMatch(/No such file or directory/);
    expect(shown(result)).not.toContain(KEY);
  });

  it("sees only its own processes in /proc, and neither /proc/1/environ nor its env holds the worker's secrets", async () => {
    const result = await run(
      "cat /proc/1/environ | tr '\\0' '\\n'; echo '--- env'; env; echo '--- ps'; ps -e --no-headers | wc -l; " +
        'echo "uid=$(id -u) gid=$(id -g) home=$HOME pwd=$(pwd)"',
    );
    expect(result.status).toBe("completed");
    const logs = result.logs ?? [];
    expect(shown(result)).not.toContain(TOKEN);
    expect(shown(result)).not.toContain(SECRET);
    expect(shown(result)).not.toContain("DATA_DIR");
    expect(logs).toContain("uid=65534 gid=65534 home=/workspace pwd=/workspace");
    // The sandbox's init, bash, ps and wc (and the pipeline's subshell at most): not the host's processes.
    const count = Number(logs[logs.indexOf("--- ps") + 1]);
    expect(count).toBeGreaterThan(0);
    expect(count).toBeLessThan(10);
    const env = logs.slice(logs.indexOf("--- env") + 1, logs.indexOf("--- ps"));
    expect(env.map((l) => l.split("=")[0]).sort()).toEqual(
      ["HOME", "LANG", "LOGNAME", "PATH", "PWD", "SHELL", "SHLVL", "TASK_ATTEMPT", "TASK_ID", "TMPDIR"]
        .concat(["USER", "WORKSPACE", "_"])
        .sort(),
    );
  });

  it("cannot write outside its workspace: /tmp is private and /etc and /usr are read-only", async () => {
    const marker = path.join("/tmp", `sandbox-marker-${randomBytes(6).toString("hex")}`);
    const result = await run(
      `echo x > ${marker} && echo "tmp write ok"; echo y > /etc/agency-sandbox-marker || echo "etc write failed"; ` +
        "touch /usr/agency-sandbox-marker || echo 'usr write failed'; echo ok > inside.txt",
    );
    expect(result.status).toBe("completed");
    expect(result.logs).toContain("tmp write ok");
    expect(result.logs).toContain("etc write failed");
    expect(result.logs).toContain("usr write failed");
    expect(existsSync(marker)).toBe(false);
    expect(existsSync("/etc/agency-sandbox-marker")).toBe(false);
    expect(existsSync("/usr/agency-sandbox-marker")).toBe(false);
    expect(result.artifacts.map((a) => a.path)).toEqual(["inside.txt"]);
  });

  it("cannot link out: a symlink or a hard link to the key yields nothing of it", async () => {
    const result = await run(
      `ln -s ${keyFile} sym.txt; ln ${keyFile} hard.txt || echo "hard link failed"; ` +
        `cp sym.txt copy.txt || echo "copy failed"; ln -s / root; cat root${keyFile} || echo "through root failed"`,
    );
    expect(result.logs).toContain("hard link failed");
    expect(result.logs).toContain("copy failed");
    expect(result.logs).toContain("through root failed");
    expect(shown(result)).not.toContain(KEY);
    expect(result.artifacts.map((a) => a.path)).toEqual([]);
  });

  it("cannot connect to a port listening on the host's loopback (no network by default)", async () => {
    const server = await listeningServer();
    try {
      const [host, port] = new URL(worker.url).host.split(":");
      const result = await run(
        `exec 3<>/dev/tcp/127.0.0.1/${server.port} && echo "connected to the test server"; ` +
          `exec 4<>/dev/tcp/${host}/${port} && echo "connected to the worker"; true`,
      );
      expect(result.status).toBe("completed");
      expect(result.logs?.join("\n")).toMatch(/Connection refused/);
      expect(result.logs).not.toContain("connected to the test server");
      expect(result.logs).not.toContain("connected to the worker");
      expect(server.accepted()).toBe(0);
    } finally {
      await server.close();
    }
  });

  it("refuses a task that asks for network when the worker does not allow it", async () => {
    const result = await run("true", { input: { script: "true", network: true } });
    expect(result.status).toBe("failed");
    expect(result.error?.code).toBe("network_not_allowed");
    expect(result.error?.message).toMatch(/WORKER_SANDBOX_NETWORK=none/);
  });

  it("runs acceptance checks in the sandbox too", async () => {
    const result = await execute(
      worker.url,
      executeRequest({
        input: { script: "echo hi > a.txt" },
        acceptanceCriteria: [
          { text: "no key", check: { kind: "command", command: `cat ${keyFile}` } },
          { text: "sandboxed", check: { kind: "command", command: 'test "$(id -u)" = 65534 && test -f a.txt' } },
        ],
      }),
      auth,
    );
    expect(result.checks?.map((c) => c.passed)).toEqual([false, true]);
    expect(result.checks?.[0]?.output).toMatch(/No such file or directory/);
    expect(shown(result)).not.toContain(KEY);
  });
});

describe("sandbox: limits end the attempt with the limit named, and the worker stays healthy", () => {
  it("contains a fork bomb at the process limit", async () => {
    const result = await run("bomb() { bomb | bomb & }; bomb; sleep 120", { budget: { maxDurationSec: 60 } });
    expect(result.status).toBe("failed");
    expect(result.error?.code).toBe("process_limit");
    expect(result.error?.message).toMatch(/process limit of 64 processes/);
    const health = workerHealthSchema.parse(await (await fetch(`${worker.url}/health`)).json());
    expect(health).toMatchObject({ status: "ok", inFlight: 0 });
    const after = await run("echo still fine > ok.txt");
    expect(after.status).toBe("completed");
    expect(after.artifacts).toEqual([expect.objectContaining({ path: "ok.txt", content: "still fine\n" })]);
  });

  it("stops a memory hog at the memory limit", async () => {
    const result = await run(`awk 'BEGIN { s = "x"; while (1) s = s s }'`, { budget: { maxDurationSec: 60 } });
    expect(result.status).toBe("failed");
    expect(result.error?.code).toBe("memory_limit");
    expect(result.error?.message).toMatch(/memory/);
    expect(result.error?.message).toMatch(/256 MiB/);
  });

  it("stops a 10 GB file at the file size limit", async () => {
    const started = Date.now();
    const result = await run("head -c 10000000000 /dev/zero > huge.bin", { budget: { maxDurationSec: 120 } });
    expect(result.status).toBe("failed");
    expect(result.error?.code).toBe("file_size_limit");
    expect(result.error?.message).toMatch(/file size limit of 16 MiB/);
    expect(result.artifacts).toEqual([{ path: "huge.bin", operation: "create" }]);
    // Liveness, not speed: the limit stops the write long before 10 GB (a generous bound for a loaded machine).
    expect(Date.now() - started).toBeLessThan(60_000);
  });

  it("stops many files at the workspace size limit", async () => {
    const result = await run("for i in $(seq 1 20); do head -c 15000000 /dev/zero > part$i.bin; done; sleep 60", {
      budget: { maxDurationSec: 120 },
    });
    expect(result.status).toBe("failed");
    expect(result.error?.code).toBe("workspace_limit");
    expect(result.error?.message).toMatch(/over its limit of 40 MiB/);
  });

  it("keeps /tmp and /dev/shm to their size (memory-backed, so they are bounded too) and /dev read-only", async () => {
    const result = await run(
      "for d in /tmp /dev/shm; do for i in 1 2 3 4 5 6; do " +
        'head -c 10000000 /dev/zero > $d/fill$i || { echo "$d is full"; break; }; done; done; ' +
        "touch /dev/fill || echo '/dev is read-only'; echo ok > /dev/null && echo 'null still works'",
    );
    expect(result.logs?.join("\n")).toMatch(/No space left on device/);
    expect(result.logs).toContain("/tmp is full");
    expect(result.logs).toContain("/dev/shm is full");
    expect(result.logs).toContain("/dev is read-only");
    expect(result.logs).toContain("null still works");
  });
});

describe("sandbox unavailable, and WORKER_SANDBOX=off", () => {
  it("refuses scripts with a message naming the package and the opt-out when bwrap cannot start", async () => {
    const broken = await startReferenceWorkerProcess({ env: { WORKER_SANDBOX_BWRAP: "/nonexistent/bwrap" } });
    try {
      const health = workerHealthSchema.parse(await (await fetch(`${broken.url}/health`)).json());
      expect(health.sandbox).toBe("unavailable");
      const marker = path.join(os.tmpdir(), `unsandboxed-marker-${randomBytes(6).toString("hex")}`);
      const result = await execute(broken.url, executeRequest(script(`touch ${marker}`)));
      expect(result.status).toBe("failed");
      expect(result.error?.code).toBe("sandbox_unavailable");
      expect(result.error?.message).toMatch(/apt-get install bubblewrap/);
      expect(result.error?.message).toMatch(/WORKER_SANDBOX=off/);
      expect(result.error?.message).toMatch(/nonexistent\/bwrap' was not found/);
      expect(existsSync(marker)).toBe(false);
      expect(broken.output.join("\n")).toMatch(/cannot start.*every script is refused/);
    } finally {
      await broken.stop();
    }
  });

  it("with WORKER_SANDBOX=off runs scripts unconfined, warns at start and reports 'off'", async () => {
    const off = await startReferenceWorkerProcess({ env: { WORKER_SANDBOX: "off", DATA_DIR: dataDir } });
    const marker = path.join(os.tmpdir(), `unsandboxed-marker-${randomBytes(6).toString("hex")}`);
    try {
      const health = workerHealthSchema.parse(await (await fetch(`${off.url}/health`)).json());
      expect(health.sandbox).toBe("off");
      const warning = off.output
        .map((l) => JSON.parse(l) as { level: number; msg: string })
        .find((l) => l.level === 40);
      expect(warning?.msg).toMatch(/UNSANDBOXED/);
      const result = await execute(off.url, executeRequest(script(`cat ${keyFile}; touch ${marker}`)));
      expect(result.status).toBe("completed");
      expect(result.logs).toContain(KEY);
      expect(existsSync(marker)).toBe(true);
    } finally {
      rmSync(marker, { force: true });
      await off.stop();
    }
  });

  it("with WORKER_SANDBOX_NETWORK=allow a task asking for network shares the host's network", async () => {
    const server = await listeningServer();
    const allow = await startReferenceWorkerProcess({ env: { WORKER_SANDBOX_NETWORK: "allow" } });
    try {
      const connect = `exec 3<>/dev/tcp/127.0.0.1/${server.port} && head -1 <&3`;
      const without = await execute(allow.url, executeRequest(script(connect)));
      expect(without.status).toBe("failed");
      expect(server.accepted()).toBe(0);
      const withNet = await execute(allow.url, executeRequest(script(connect, { network: true })));
      expect(withNet.status).toBe("completed");
      expect(withNet.logs).toContain("hello from the host");
      expect(server.accepted()).toBe(1);
    } finally {
      await allow.stop();
      await server.close();
    }
  });
});

describe.each(DATABASES)("the Workers page's sandbox state, from /health (%s)", (kind) => {
  it("stores what each worker's /health says: sandboxed, unsandboxed (off), unavailable", async () => {
    const [h, off, broken] = await Promise.all([
      harness(kind),
      startReferenceWorkerProcess({ env: { WORKER_SANDBOX: "off" } }),
      startReferenceWorkerProcess({ env: { WORKER_SANDBOX_BWRAP: "/nonexistent/bwrap" } }),
    ]);
    try {
      const caller = { actor: actor("admin") };
      const entries = [
        ["sandboxed", worker.url, TOKEN],
        ["unsandboxed", off.url, undefined],
        ["broken", broken.url, undefined],
      ] as const;
      for (const [name, url, token] of entries) {
        await h.services.workers.register(caller, {
          name,
          url,
          capabilities: ["script"],
          maxConcurrency: 1,
          ...(token ? { token } : {}),
        });
      }
      await h.services.workers.pollHealth();
      const byName = Object.fromEntries((await h.services.workers.list()).map((w) => [w.name, w.sandbox]));
      expect(byName).toEqual({ sandboxed: "bubblewrap", unsandboxed: "off", broken: "unavailable" });
    } finally {
      await off.stop();
      await broken.stop();
      await h.dispose();
    }
    // A fresh migrated database and two worker processes take a while on a loaded machine; no timing is asserted.
  }, 120_000);
});

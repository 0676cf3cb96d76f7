import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { taskSpecSchema } from "../src/shared/task-spec.js";
import { TERMINAL_STATES } from "../src/shared/task-state.js";
import type { Critique, ExecuteResult } from "../src/shared/worker-protocol.js";
import { workerHealthSchema } from "../src/shared/worker-protocol.js";
import { DATABASES } from "./helpers/databases.js";
import { type EngineApp, waitFor as engineWaitFor, startEngineApp } from "./helpers/fault-worker.js";
import { withEvents } from "./helpers/task-events.js";
import {
  execute,
  executeRequest,
  hostPidsWith,
  type ReferenceWorkerProcess,
  startReferenceWorkerProcess,
  uniqueSleep,
  waitFor,
} from "./helpers/worker.js";

/**
 * Command-line agents as workers, through the real reference worker (`npm run worker` as a child process, over HTTP,
 * in the real bubblewrap sandbox): a stand-in agent program (test/fixtures/stand-in-agent.mjs) gets the task's prompt
 * on stdin or as an argument, edits the workspace as its prompt says and reports usage the way real agents do.
 */

// The stand-in is copied out of the checkout, which may itself lie under /tmp (the sandbox's own private mount, so
// never a read-only path an agent may name), into a directory the sandbox's uid 65534 can read.
const FIXTURES = mkdtempSync("/var/tmp/agent-test-fixtures-");
chmodSync(FIXTURES, 0o755);
const STAND_IN = path.join(FIXTURES, "stand-in-agent.mjs");
copyFileSync(path.resolve(path.dirname(fileURLToPath(import.meta.url)), "fixtures", "stand-in-agent.mjs"), STAND_IN);
chmodSync(STAND_IN, 0o644);
const TOKEN = `worker-token-${randomBytes(8).toString("hex")}`;
const API_KEY = `sk-test-${randomBytes(12).toString("hex")}`;
const SECRET = `server-secret-${randomBytes(8).toString("hex")}`;
const KEY = `master-key-${randomBytes(16).toString("hex")}`;

const agents = {
  "stand-in": {
    command: ["node", STAND_IN],
    prompt: "stdin",
    env: ["STAND_IN_API_KEY"],
    readOnlyPaths: [FIXTURES],
    usage: {
      json: {
        inputTokens: "usage.input_tokens",
        outputTokens: "usage.output_tokens",
        costUsd: "total_cost_usd",
        model: "model",
        match: { type: "result" },
      },
    },
  },
  "stand-in-arg": {
    command: ["node", STAND_IN, "--style", "aider", "--message"],
    prompt: "arg",
    readOnlyPaths: [FIXTURES],
    usage: {
      regex: {
        inputTokens: "Tokens: ([0-9.,]+[kKmM]?) sent",
        outputTokens: "([0-9.,]+[kKmM]?) received",
        costUsd: "Cost: \\$([0-9.]+) message",
      },
      combine: "sum",
      stream: "stdout",
      model: "stand-in-aider",
    },
  },
  "stand-in-quick": { command: ["node", STAND_IN], readOnlyPaths: [FIXTURES], timeoutMs: 3_000 },
  "stand-in-online": { command: ["node", STAND_IN], readOnlyPaths: [FIXTURES], network: true },
};

let dataDir: string;
let keyFile: string;
let reposDir: string;
let repoPath: string;
let worker: ReferenceWorkerProcess;
const auth = { token: TOKEN };
/** Everything the agency would store and show of an attempt. */
const shown = (r: ExecuteResult) => JSON.stringify(r);
const actions = (...lines: string[]) => lines.map((l) => `> ${l}`).join("\n");
const logText = (r: ExecuteResult) => (r.logs ?? []).join("\n");
const artifact = (r: ExecuteResult, p: string) => r.artifacts.find((a) => a.path === p);

function runAgent(capability: string, spec: Record<string, unknown>, opts: { critique?: Critique } = {}) {
  const request = executeRequest({ capability, ...spec });
  return execute(worker.url, opts.critique ? { ...request, critique: opts.critique } : request, auth);
}

/** A TCP server on the host's loopback that counts the connections it accepts. */
async function listeningServer(): Promise<{ port: number; accepted: () => number; close: () => Promise<void> }> {
  let count = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    count++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    // The agent closes as soon as it is connected.
    socket.on("error", () => {});
    socket.end("hello from the host\n");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    accepted: () => count,
    close: () =>
      new Promise((r) => {
        server.close(() => r());
        for (const socket of sockets) socket.destroy();
      }),
  };
}

function git(cwd: string, ...args: string[]): string {
  return execFileSync("git", args, {
    cwd,
    encoding: "utf8",
    env: {
      PATH: process.env.PATH,
      HOME: cwd,
      GIT_CONFIG_NOSYSTEM: "1",
      GIT_AUTHOR_NAME: "t",
      GIT_AUTHOR_EMAIL: "t@example.com",
      GIT_COMMITTER_NAME: "t",
      GIT_COMMITTER_EMAIL: "t@example.com",
    },
  }).trim();
}

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), "agent-test-data-"));
  keyFile = path.join(dataDir, "master.key");
  writeFileSync(keyFile, KEY, { mode: 0o600 });
  reposDir = mkdtempSync(path.join(os.tmpdir(), "agent-test-repos-"));
  // A root worker's sandbox runs as an unprivileged user, which must be able to read the repositories it fetches.
  chmodSync(reposDir, 0o755);
  repoPath = path.join(reposDir, "project");
  execFileSync("mkdir", ["-p", path.join(repoPath, "src")]);
  git(repoPath, "init", "-q", "-b", "main");
  writeFileSync(path.join(repoPath, "src", "greet.js"), 'export const greet = () => "hello";\n');
  writeFileSync(path.join(repoPath, "README.md"), "# project\n");
  git(repoPath, "add", ".");
  git(repoPath, "commit", "-q", "-m", "first");
  git(repoPath, "tag", "v1");
  writeFileSync(path.join(repoPath, "src", "greet.js"), 'export const greet = () => "hello, world";\n');
  git(repoPath, "commit", "-q", "-am", "second");
  worker = await startReferenceWorkerProcess({
    env: {
      DATA_DIR: dataDir,
      WORKER_TOKEN: TOKEN,
      WORKER_AGENTS: JSON.stringify(agents),
      WORKER_GIT_LOCAL_ROOTS: reposDir,
      WORKER_GIT_ALLOWED_HOSTS: "github.com,127.0.0.1",
      STAND_IN_API_KEY: API_KEY,
      SANDBOX_TEST_SECRET: SECRET,
    },
  });
}, 60_000);
afterAll(async () => {
  await worker?.stop();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(reposDir, { recursive: true, force: true });
  rmSync(FIXTURES, { recursive: true, force: true });
});

describe("a command-line agent as a worker", () => {
  it("offers each configured agent as a capability, beside scripts, and says it is sandboxed", async () => {
    const health = workerHealthSchema.parse(await (await fetch(`${worker.url}/health`)).json());
    expect(health.capabilities).toEqual(["script", "stand-in", "stand-in-arg", "stand-in-quick", "stand-in-online"]);
    expect(health.sandbox).toBe("bubblewrap");
  });

  it("gives the agent the prompt on stdin and returns its edits as artifacts with diffs, its output, its usage", async () => {
    const critique: Critique = {
      fromAttempt: 1,
      verdict: "changes_requested",
      rationale: "The greeting is still the old one.",
      findings: [
        { judge: "acceptance", severity: "error", message: "criterion 1 failed", path: "src/app.txt", line: 2 },
      ],
    };
    const result = await runAgent(
      "stand-in",
      {
        title: "Update the greeting",
        description: [
          "Change the second line and add notes.",
          actions(
            "replace src/app.txt line two => line 2",
            "create notes/new.md hello from the agent",
            "delete old.txt",
            "env STAND_IN_API_KEY",
            "env SANDBOX_TEST_SECRET",
            "env WORKER_TOKEN",
          ),
        ].join("\n"),
        acceptanceCriteria: [
          {
            text: "The second line says 'line 2'",
            check: { kind: "command", command: "grep -q 'line 2' src/app.txt" },
          },
          // Checks run without the agent's API key.
          { text: "No key in checks", check: { kind: "command", command: 'test -z "$STAND_IN_API_KEY"' } },
        ],
        input: { files: { "src/app.txt": "line one\nline two\n", "old.txt": "obsolete\n" } },
      },
      { critique },
    );
    expect(result.error).toBeUndefined();
    expect(result.status).toBe("completed");
    expect(result.summary).toBe(
      "Agent 'stand-in' exited with code 0; 2 created, 1 modified, 1 deleted; checks 2/2 passed",
    );

    const app = artifact(result, "src/app.txt");
    expect(app?.operation).toBe("modify");
    expect(app?.content).toBe("line one\nline 2\n");
    expect(app?.diff).toContain("--- a/src/app.txt");
    expect(app?.diff).toContain("-line two\n+line 2");
    expect(artifact(result, "notes/new.md")).toMatchObject({ operation: "create", content: "hello from the agent\n" });
    expect(artifact(result, "notes/new.md")?.diff).toContain("+hello from the agent");
    expect(artifact(result, "old.txt")).toMatchObject({ operation: "delete" });
    expect(artifact(result, "old.txt")?.diff).toContain("-obsolete");

    // The prompt the agent read: the spec's title, description, criteria with their checks, and the critique.
    const prompt = artifact(result, ".agent/prompt.md")?.content ?? "";
    expect(prompt).toContain("# Update the greeting");
    expect(prompt).toContain("Change the second line and add notes.");
    expect(prompt).toContain("1. The second line says 'line 2' (checked by running `grep -q 'line 2' src/app.txt`");
    expect(prompt).toContain("## Review of attempt 1");
    expect(prompt).toContain("The greeting is still the old one.");
    expect(prompt).toContain("- [error] src/app.txt:2: criterion 1 failed");

    const logs = logText(result);
    expect(logs).toContain(`stand-in agent (stdin): read ${prompt.length} characters of prompt`);
    expect(logs).toContain("edited src/app.txt");
    // Only the variables the agent's configuration names reach it; never the worker's own.
    expect(logs).toContain(`env STAND_IN_API_KEY: set (${API_KEY.length} characters)`);
    expect(logs).toContain("env SANDBOX_TEST_SECRET: unset");
    expect(logs).toContain("env WORKER_TOKEN: unset");
    expect(shown(result)).not.toContain(API_KEY);

    // The JSON result line's figures (the "progress" line before it does not match `type: result`).
    expect(result.usage).toMatchObject({
      inputTokens: prompt.length,
      outputTokens: 42,
      costUsd: 0.0125,
      model: "stand-in-model-1",
    });
    expect(result.usage?.durationMs).toBeGreaterThan(0);
    expect(result.checks?.map((c) => c.passed)).toEqual([true, true]);
  });

  it("passes the prompt as an argument and reads aider-style usage lines with regexes, summed", async () => {
    const result = await runAgent("stand-in-arg", {
      title: "Write a file",
      description: actions("create hello.txt hi"),
    });
    expect(result.status).toBe("completed");
    const prompt = artifact(result, ".agent/prompt.md")?.content ?? "";
    expect(prompt).toContain("> create hello.txt hi");
    expect(logText(result)).toContain(`stand-in agent (argv): read ${prompt.length} characters of prompt`);
    expect(artifact(result, "hello.txt")).toMatchObject({ operation: "create", content: "hi\n" });
    const firstLine = Number((prompt.length / 1000).toFixed(1)) * 1000;
    expect(result.usage).toMatchObject({
      inputTokens: Math.round(firstLine + 1000),
      outputTokens: 215,
      costUsd: 0.0125,
      // No model in aider's lines: the one the configuration names.
      model: "stand-in-aider",
    });
  });

  it("runs confined: no host file outside the workspace, no network when network is off", async () => {
    const server = await listeningServer();
    try {
      const result = await runAgent("stand-in", {
        description: actions(`read ${keyFile}`, `connect ${server.port}`),
      });
      expect(result.status).toBe("completed");
      const logs = logText(result);
      expect(logs).toContain(`read ${keyFile} failed: ENOENT`);
      expect(logs).toMatch(new RegExp(`connect ${server.port}: failed: (ECONNREFUSED|ENETUNREACH)`));
      expect(server.accepted()).toBe(0);
      expect(shown(result)).not.toContain(KEY);
    } finally {
      await server.close();
    }
  });

  it("shares the host's network with an agent configured with network: true (and nothing else changes)", async () => {
    const server = await listeningServer();
    try {
      const result = await runAgent("stand-in-online", {
        description: actions(`connect ${server.port}`, `read ${keyFile}`),
      });
      expect(result.status).toBe("completed");
      expect(logText(result)).toContain(`connect ${server.port}: connected`);
      expect(server.accepted()).toBe(1);
      expect(logText(result)).toContain(`read ${keyFile} failed: ENOENT`);
    } finally {
      await server.close();
    }
  });

  it("refuses a task that asks for network for an agent: that is the worker's setting", async () => {
    const result = await runAgent("stand-in", { description: "x", input: { network: true } });
    expect(result.status).toBe("failed");
    expect(result.error?.code).toBe("invalid_input");
    expect(result.error?.message).toContain("set by the worker's agent configuration");
  });

  it("ends the attempt with a failing command's exit code and the tail of its stderr, keeping its changes", async () => {
    const result = await runAgent("stand-in", {
      description: actions("create partial.txt half done", "fail 3 model quota exhausted for this key"),
    });
    expect(result.status).toBe("failed");
    expect(result.error?.code).toBe("agent_failed");
    expect(result.error?.message).toContain("Agent 'stand-in' exited with code 3; 2 created, 0 modified, 0 deleted");
    expect(result.error?.message).toContain("Last lines on stderr:\nmodel quota exhausted for this key");
    expect(artifact(result, "partial.txt")).toMatchObject({ operation: "create", content: "half done\n" });
    expect(result.usage?.durationMs).toBeGreaterThan(0);
  });

  it("refuses a prompt too long for a command-line argument, naming the fix", async () => {
    const critique: Critique = {
      fromAttempt: 1,
      verdict: "changes_requested",
      rationale: "Many findings.",
      findings: Array.from({ length: 100 }, (_, i) => ({
        judge: "acceptance",
        severity: "error" as const,
        message: `finding ${i}: ${"x".repeat(1_500)}`,
      })),
    };
    const result = await runAgent("stand-in-arg", { description: actions("create never.txt x") }, { critique });
    expect(result.status).toBe("failed");
    expect(result.error?.code).toBe("prompt_too_long");
    expect(result.error?.message).toContain(`configure agent 'stand-in-arg' with prompt: "stdin"`);
    expect(result.artifacts).toEqual([]);
    // The same prompt on stdin is fine.
    const onStdin = await runAgent("stand-in", { description: actions("create ok.txt x") }, { critique });
    expect(onStdin.status).toBe("completed");
    expect(artifact(onStdin, ".agent/prompt.md")?.content?.length).toBeGreaterThan(150_000);
  });

  it("stops a hanging command at its timeoutMs, with everything it started", async () => {
    const sleep = uniqueSleep();
    const [program, ...args] = sleep.split(" ");
    const started = Date.now();
    const result = await runAgent("stand-in-quick", {
      description: actions(`spawn ${program} ${args.join(" ")}`, "hang"),
    });
    const elapsed = Date.now() - started;
    expect(result.status).toBe("failed");
    expect(result.error?.code).toBe("timeout");
    expect(result.error?.message).toContain(
      "Agent 'stand-in-quick' ran past its 3 s limit (timeoutMs of agent 'stand-in-quick')",
    );
    expect(logText(result)).toContain("hanging");
    expect(elapsed).toBeGreaterThanOrEqual(3_000);
    // The detached child it left behind dies with the sandbox.
    await waitFor(() => hostPidsWith(sleep).length === 0, `no '${sleep}' process left`, 20_000);
  }, 60_000);
});

describe("an agent on an unsandboxed worker (WORKER_SANDBOX=off)", () => {
  it("runs the same command line with the prompt on stdin, in the workspace, without the sandbox", async () => {
    const off = await startReferenceWorkerProcess({
      env: {
        WORKER_SANDBOX: "off",
        WORKER_CAPABILITIES: "",
        WORKER_AGENTS: JSON.stringify({ "stand-in": agents["stand-in"] }),
        STAND_IN_API_KEY: API_KEY,
      },
    });
    try {
      const health = workerHealthSchema.parse(await (await fetch(`${off.url}/health`)).json());
      expect(health).toMatchObject({ capabilities: ["stand-in"], sandbox: "off" });
      const result = await execute(
        off.url,
        executeRequest({ capability: "stand-in", description: actions("create a.txt unconfined", "env HOME") }),
      );
      expect(result.status).toBe("completed");
      expect(artifact(result, "a.txt")).toMatchObject({ operation: "create", content: "unconfined\n" });
      expect(logText(result)).toContain("env HOME: set");
      expect(result.usage).toMatchObject({ outputTokens: 42, costUsd: 0.0125 });
    } finally {
      await off.stop();
    }
  }, 60_000);
});

describe("a git checkout as the task's workspace", () => {
  it("checks out the named ref of an allowed local repository and returns the agent's changes against it", async () => {
    const result = await runAgent("stand-in", {
      description: actions('replace src/greet.js "hello" => "hi there"', "create CHANGES.md greet says hi there"),
      repo: { url: repoPath, ref: "v1" },
    });
    expect(result.error).toBeUndefined();
    expect(result.status).toBe("completed");
    const commit = git(repoPath, "rev-parse", "v1");
    expect(logText(result)).toContain(`checked out ${repoPath} at ${commit}`);
    // The checkout's files are the baseline: the diff is against v1, not against the branch's newer commit.
    const greet = artifact(result, "src/greet.js");
    expect(greet?.operation).toBe("modify");
    expect(greet?.diff).toContain('-export const greet = () => "hello";\n+export const greet = () => "hi there";');
    expect(artifact(result, "CHANGES.md")?.operation).toBe("create");
    expect(result.artifacts.map((a) => a.path).filter((p) => p.startsWith(".git"))).toEqual([]);
    expect(artifact(result, "README.md")).toBeUndefined();
  });

  it("checks out the default branch through a file:// URL for a script task too", async () => {
    const result = await execute(
      worker.url,
      executeRequest({ input: { script: "cat src/greet.js" }, repo: { url: `file://${repoPath}` } }),
      auth,
    );
    expect(result.status).toBe("completed");
    expect(logText(result)).toContain('export const greet = () => "hello, world";');
    expect(result.artifacts).toEqual([]);
  });

  it("refuses repositories this worker does not allow, and a ref that does not exist", async () => {
    const outside = await runAgent("stand-in", { description: "x", repo: { url: dataDir } });
    expect(outside.error).toMatchObject({ code: "repo_not_allowed" });
    expect(outside.error?.message).toContain("outside this worker's WORKER_GIT_LOCAL_ROOTS");
    const host = await runAgent("stand-in", { description: "x", repo: { url: "https://example.com/a/b.git" } });
    expect(host.error).toMatchObject({ code: "repo_not_allowed" });
    expect(host.error?.message).toContain("example.com is not in this worker's WORKER_GIT_ALLOWED_HOSTS");
    const missing = await runAgent("stand-in", { description: "x", repo: { url: repoPath, ref: "no-such-branch" } });
    expect(missing.error?.code).toBe("repo_checkout_failed");
    expect(missing.error?.message).toContain("Could not check out no-such-branch");
  });

  it("fetches an https repository of an allowed host over the network (here a TCP server that is no git server)", async () => {
    const server = await listeningServer();
    try {
      const result = await runAgent("stand-in", {
        description: "x",
        repo: { url: `https://127.0.0.1:${server.port}/team/project.git`, ref: "main" },
      });
      expect(result.error?.code).toBe("repo_checkout_failed");
      expect(result.error?.message).toContain(
        `Could not check out main of https://127.0.0.1:${server.port}/team/project.git`,
      );
      // The fetch reached the host, though neither the task nor WORKER_SANDBOX_NETWORK asked for network.
      expect(server.accepted()).toBeGreaterThanOrEqual(1);
      expect(artifact(result, ".agent/prompt.md")).toBeUndefined();
    } finally {
      await server.close();
    }
  });

  it("refuses credentials, plain http and odd refs in the spec itself", () => {
    const problems = (repo: unknown) => {
      const parsed = taskSpecSchema.safeParse({ title: "t", repo });
      return parsed.success ? [] : parsed.error.issues.map((i) => i.message);
    };
    expect(problems({ url: "https://user:secret@github.com/a/b.git" })).toEqual([
      "Repository URL must not carry credentials (they would be stored and shown with the task)",
    ]);
    expect(problems({ url: "http://github.com/a/b.git" })).toEqual(["Repository URL must use https:// (not http://)"]);
    expect(problems({ url: "git@github.com:a/b.git" })[0]).toMatch(/must be an https:\/\/ URL/);
    expect(problems({ url: "https://github.com/a/b.git", ref: "--upload-pack=x" })[0]).toMatch(/must be a branch/);
    expect(problems({ url: "https://github.com/a/b.git", ref: "a/../b" })[0]).toMatch(/must be a branch/);
    expect(problems({ url: "https://github.com/a/b.git", ref: "release/1.2" })).toEqual([]);
  });
});

describe("agent configuration is checked at start", () => {
  it("stops the worker with every problem named by field", async () => {
    // An agent installed outside /usr whose link is visible but whose program is not (not under /tmp: the sandbox's).
    const installs = mkdtempSync("/var/tmp/agent-test-install-");
    mkdirSync(path.join(installs, "bin"));
    mkdirSync(path.join(installs, "lib"));
    writeFileSync(path.join(installs, "lib", "agent"), "#!/bin/sh\n", { mode: 0o755 });
    symlinkSync(path.join(installs, "lib", "agent"), path.join(installs, "bin", "agent"));
    const bad = {
      linked: { command: [path.join(installs, "bin", "agent")], readOnlyPaths: [path.join(installs, "bin")] },
      broken: {
        command: ["no-such-agent-program", "-p"],
        env: ["UNSET_AGENT_KEY_FOR_TEST", "WORKER_TOKEN"],
        readOnlyPaths: ["/tmp"],
      },
      script: { command: ["node"] },
      "Bad Name": { command: ["node"] },
    };
    const err = await startReferenceWorkerProcess({ env: { WORKER_AGENTS: JSON.stringify(bad) } }).then(
      () => new Error("the worker started"),
      (e: Error) => e,
    );
    expect(err.message).toContain("agents.Bad Name: an agent's capability may contain only");
    const fixed = { ...bad } as Record<string, unknown>;
    delete fixed["Bad Name"];
    const err2 = await startReferenceWorkerProcess({ env: { WORKER_AGENTS: JSON.stringify(fixed) } }).then(
      () => new Error("the worker started"),
      (e: Error) => e,
    );
    const message = err2.message;
    rmSync(installs, { recursive: true, force: true });
    expect(message).toContain(
      `agents.linked: command[0] '${path.join(installs, "bin", "agent")}' (a link to '${path.join(installs, "lib", "agent")}') is not visible inside the sandbox: add its directory to readOnlyPaths`,
    );
    expect(message).toContain("agents.broken: command[0] 'no-such-agent-program' was not found in the sandbox's PATH");
    expect(message).toContain("agents.broken: env 'UNSET_AGENT_KEY_FOR_TEST' is not set in the worker's environment");
    expect(message).toContain("agents.broken: env 'WORKER_TOKEN' is set by the sandbox or belongs to the worker");
    expect(message).toContain("agents.broken: readOnlyPaths '/tmp' overlaps a mount the sandbox makes itself");
    expect(message).toContain("agents.script: 'script' is also in WORKER_CAPABILITIES");
  }, 60_000);

  it("refuses JSON that does not parse, and unknown settings", async () => {
    const notJson = await startReferenceWorkerProcess({ env: { WORKER_AGENTS: "{claude: }" } }).then(
      () => new Error("the worker started"),
      (e: Error) => e,
    );
    expect(notJson.message).toContain("WORKER_AGENTS: is not valid JSON");
    const unknown = await startReferenceWorkerProcess({
      env: { WORKER_AGENTS: JSON.stringify({ a: { command: ["node"], prompt: "file", netwrok: true } }) },
    }).then(
      () => new Error("the worker started"),
      (e: Error) => e,
    );
    expect(unknown.message).toContain("agents.a.prompt: prompt must be 'stdin' or 'arg'");
    expect(unknown.message).toMatch(/agents\.a: Unrecognized key: "netwrok"/);
  }, 60_000);
});

describe.each(DATABASES)("an agent worker driven by the agency (%s)", (kind) => {
  let s: EngineApp;
  beforeAll(async () => {
    s = await startEngineApp(kind, { MAX_AUTO_REDISPATCH: "1" });
    await s.http.workers.register.mutate({
      name: "agents",
      url: worker.url,
      capabilities: ["stand-in"],
      maxConcurrency: 2,
      token: TOKEN,
    });
  }, 120_000);
  afterAll(async () => {
    await s?.stop();
  });

  it("runs the request-changes loop: the critique of attempt 1 reaches the agent's prompt for attempt 2", async () => {
    const created = await s.http.tasks.create.mutate({
      title: "Write the notes",
      capability: "stand-in",
      description: actions(
        "no-record",
        "first draft notes.md",
        "reviewed create notes.md The notes, written after the review.",
      ),
    });
    const t = await engineWaitFor(
      `task ${created.id} to settle`,
      () => withEvents(s.http, { id: created.id }),
      (task) => TERMINAL_STATES.includes(task.state),
      120_000,
    );
    expect(t.state).toBe("accepted");
    expect(t.attempts.map((a) => [a.number, a.verdict])).toEqual([
      [1, "changes_requested"],
      [2, "accept"],
    ]);
    const [first, second] = t.attempts;
    expect(first?.artifacts.map((a) => a.path)).toEqual(["notes.md"]);
    expect(first?.judgement?.judges.find((j) => j.judge === "placeholder")?.passed).toBe(false);
    expect(second?.critique?.fromAttempt).toBe(1);
    // The agent read the finding about its draft in its prompt (it prints each finding it was given) and acted on it.
    const logs = t.events.filter((e) => e.type === "log").map((e) => String(e.data.line));
    expect(logs.some((l) => /^review: - \[error\] notes\.md:1: /.test(l))).toBe(true);
    expect(second?.artifacts.map((a) => [a.path, a.content])).toEqual([
      ["notes.md", "The notes, written after the review.\n"],
    ]);
    // The agent's output is the task's log, and the usage it reported is stored with each attempt.
    expect(logs.filter((l) => l.startsWith("stand-in agent (stdin)"))).toHaveLength(2);
    const promptChars = Number(
      /read (\d+) characters/.exec(logs.filter((l) => l.startsWith("stand-in agent"))[1] ?? "")?.[1],
    );
    expect(second?.result?.usage).toMatchObject({ inputTokens: promptChars, outputTokens: 42, costUsd: 0.0125 });
  }, 180_000);

  it("carries spec.repo from tasks.create to the worker, and refuses a repository URL with credentials at create", async () => {
    const created = await s.http.tasks.create.mutate({
      title: "Greet the world",
      capability: "stand-in",
      description: actions("no-record", 'replace src/greet.js "hello, world" => "hello, agency"'),
      repo: { url: `file://${repoPath}`, ref: "main" },
    });
    const t = await engineWaitFor(
      `task ${created.id} to settle`,
      () => withEvents(s.http, { id: created.id }),
      (task) => TERMINAL_STATES.includes(task.state),
      120_000,
    );
    expect(t.state).toBe("accepted");
    expect(t.spec.repo).toEqual({ url: `file://${repoPath}`, ref: "main" });
    expect(t.attempts[0]?.artifacts.map((a) => [a.path, a.operation])).toEqual([["src/greet.js", "modify"]]);
    expect(t.attempts[0]?.artifacts[0]?.diff).toContain('+export const greet = () => "hello, agency";');

    const before = (await s.http.tasks.list.query({})).items.length;
    await expect(
      s.http.tasks.create.mutate({
        title: "Leaky",
        capability: "stand-in",
        repo: { url: "https://user:secret@github.com/a/b.git" },
      }),
    ).rejects.toThrow(/must not carry credentials/);
    expect((await s.http.tasks.list.query({})).items.length).toBe(before);
  }, 180_000);
});

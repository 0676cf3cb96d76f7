import os from "node:os";
import path from "node:path";
import { z } from "zod";
import type { TaskSpec } from "../shared/task-spec.js";
import { toStorableText } from "../shared/text.js";
import type { CheckResult, ExecuteResult } from "../shared/worker-protocol.js";
import { type Agent, agentArgv, buildAgentPrompt, createUsageReader, MAX_PROMPT_ARG_BYTES } from "./agents.js";
import { checkoutRepo, type RepoPolicy, RepoRefusedError, type RepoSource, repoSource } from "./repo.js";
import {
  createScriptSandbox,
  type LimitKind,
  SandboxRefusedError,
  type ScriptOutcome,
  type ScriptSandbox,
} from "./sandbox.js";
import { createWorker, type Worker, WorkerAbortError, type WorkerContext, type WorkerLogger } from "./sdk.js";
import { diffSnapshots, snapshotWorkspace } from "./snapshot.js";
import { WorkspacePathError } from "./workspace.js";

/**
 * The reference worker: runs `spec.input.script` with bash in the task's empty workspace (seeded first from
 * `spec.repo`, a git checkout, then from `spec.input.files`, a map of relative path to text), streams its output line
 * by line, reports the files it created, modified or deleted as artifacts with unified diffs, then runs the
 * acceptance criteria's command checks. Scripts and checks run in the sandbox (`sandbox.ts`); `spec.input.network:
 * true` asks for network access, which the sandbox grants only when the worker allows it.
 *
 * A task whose capability names a configured agent (`agents.ts`) runs that agent's command instead of a script, in
 * the same workspace, sandbox and limits, with the task's prompt on its stdin or command line; its output is the
 * task's log, and the figures it reports are the result's usage.
 */

export interface ReferenceWorkerOptions {
  name?: string;
  capabilities?: string[];
  token?: string;
  maxConcurrency?: number;
  workspacesDir?: string;
  version?: string;
  logger?: WorkerLogger;
  /** Between SIGTERM and SIGKILL of a script's process group; default 2 s. */
  killGraceMs?: number;
  /** Per acceptance check; default 60 s (never past the deadline). */
  checkTimeoutMs?: number;
  /** Log lines forwarded per script or check run; the rest are counted, not sent. Default 5,000. */
  maxLogLines?: number;
  /** Content plus diffs of all artifacts of one result; default DEFAULT_MAX_RESULT_CHARS. */
  maxResultChars?: number;
  /** Extra environment for scripts, on top of the minimal one they get. */
  env?: Record<string, string>;
  /** Where scripts run; default a bubblewrap sandbox with default limits (`createScriptSandbox()`). */
  sandbox?: ScriptSandbox;
  abortGraceMs?: number;
  keepWorkspaces?: boolean;
  /** A streamed answer quiet this long gets a heartbeat line; default HEARTBEAT_EVERY_MS (10 s), 0 sends none. */
  heartbeatMs?: number;
  /** How long a run goes on once no client waits for it (an agency restarting re-attaches); default 60 s. */
  detachedGraceMs?: number;
  /** Command-line agents by capability (`loadAgents`); a task for one of them runs its command instead of a script. */
  agents?: ReadonlyMap<string, Agent>;
  /** Where a task's `repo` may come from; default DEFAULT_REPO_POLICY. */
  repoPolicy?: RepoPolicy;
}

/** The public forges over https; no local repositories. */
export const DEFAULT_REPO_POLICY: RepoPolicy = {
  allowedHosts: ["github.com", "gitlab.com", "bitbucket.org", "codeberg.org"],
  localRoots: [],
  workspacesDir: path.join(os.tmpdir(), "agent-agency-workspaces"),
};

const filesSchema = z.record(z.string(), z.string(), {
  error: "spec.input.files must map relative paths to text contents",
});

export const referenceInputSchema = z.looseObject({
  script: z
    .string({ error: "spec.input.script must be a string: the bash script to run in the task's workspace" })
    .min(1, "spec.input.script must not be empty"),
  files: filesSchema.optional(),
  network: z.boolean({ error: "spec.input.network must be true or false" }).optional(),
});

/** An agent's task: its prompt is the spec itself; the input may seed files. Its network is the agent's setting. */
export const agentInputSchema = z.looseObject({
  files: filesSchema.optional(),
  network: z
    .literal(false, { error: "an agent's network access is set by the worker's agent configuration, not by the task" })
    .optional(),
});

const MAX_LINE_CHARS = 100_000;
const MAX_CHECK_OUTPUT = 20_000;
/**
 * Content plus diffs of one result. The agency reads at most WORKER_MAX_RESPONSE_BYTES (8 MiB by default) per answer
 * and WORKER_MAX_ARTIFACT_BYTES of artifacts; 2 Mi characters stay under both even as multi-byte UTF-8 with JSON
 * escaping, so a large change leaves content out (counted in the summary) instead of failing the attempt.
 */
export const DEFAULT_MAX_RESULT_CHARS = 2 * 1024 * 1024;
const LIMIT_CODES: Record<LimitKind, string> = {
  memory: "memory_limit",
  processes: "process_limit",
  file_size: "file_size_limit",
  workspace_size: "workspace_limit",
  workspace_files: "workspace_limit",
};

function describeExit(outcome: ScriptOutcome): string {
  if (outcome.spawnError) return `could not start: ${outcome.spawnError}`;
  if (outcome.limit) return `was stopped at a sandbox limit: ${outcome.limit.message}`;
  if (outcome.signal) return `was killed by ${outcome.signal}`;
  return `exited with code ${outcome.exitCode}`;
}

async function runChecks(
  ctx: WorkerContext,
  opts: Required<Pick<ReferenceWorkerOptions, "killGraceMs" | "checkTimeoutMs">>,
  sandbox: ScriptSandbox,
  env: Record<string, string>,
  network: boolean,
): Promise<CheckResult[]> {
  const checks: CheckResult[] = [];
  const deadline = Date.parse(ctx.request.deadline);
  const criteria = ctx.request.spec.acceptanceCriteria;
  const commands = criteria.flatMap((c, i) => (c.check?.kind === "command" ? [{ i, command: c.check.command }] : []));
  if (commands.length) ctx.progress(undefined, `running ${commands.length} acceptance check(s)`);
  for (const { i, command } of commands) {
    const remaining = deadline - Date.now();
    if (ctx.signal.aborted || remaining <= 0) {
      checks.push({ criterion: i, passed: false, exitCode: null, output: "Not run: the attempt was stopped first" });
      continue;
    }
    let output = "";
    const outcome = await sandbox.run({
      command,
      workspaceRoot: ctx.workspace.root,
      env,
      network,
      timeoutMs: Math.min(opts.checkTimeoutMs, remaining),
      signal: ctx.signal,
      killGraceMs: opts.killGraceMs,
      maxLineChars: MAX_CHECK_OUTPUT,
      onLine(_stream, line) {
        // Keep the tail: a failing check usually says why at the end.
        output = `${output}${line}\n`.slice(-MAX_CHECK_OUTPUT);
      },
    });
    const passed = outcome.exitCode === 0 && !outcome.timedOut && !outcome.aborted;
    if (outcome.timedOut) output = `${output}(check timed out and was killed)\n`.slice(-MAX_CHECK_OUTPUT);
    if (outcome.limit) output = `${output}(check ${describeExit(outcome)})\n`.slice(-MAX_CHECK_OUTPUT);
    if (outcome.spawnError) output = `could not start: ${outcome.spawnError}`;
    // Check output is relayed text: a NUL or lone surrogate in it must not fail the whole result.
    checks.push({ criterion: i, passed, exitCode: outcome.exitCode, output: toStorableText(output) });
    ctx.log("info", `check ${i} ${passed ? "passed" : "failed"} (${describeExit(outcome)}): ${command}`);
  }
  return checks;
}

type Usage = NonNullable<ExecuteResult["usage"]>;

/** One sandboxed run in the task's workspace: the task's script, or a configured agent's command. */
interface WorkspaceRun {
  /** How messages name it: "Script", "Agent 'claude'". */
  what: string;
  command: string | string[];
  stdin?: string;
  env: Record<string, string>;
  network: boolean;
  networkGrantedByWorker?: boolean;
  readOnlyPaths?: readonly string[];
  /** A time limit of the run's own; the budget and the deadline still apply when they are shorter. */
  ownTimeout?: { ms: number; name: string };
  /** The error code of a non-zero exit. */
  failedCode: string;
  /** Ends a failure's message with the last lines the run wrote to stderr. */
  stderrTail: boolean;
  /** Leaves `.git` out of the changes (a checkout's history, an agent's own commits). */
  ignoreGit: boolean;
  onLine?(stream: "stdout" | "stderr", line: string): void;
  usage?(): Omit<Usage, "durationMs">;
  /** Acceptance checks run with this environment and network (not an agent's API keys). */
  checks: { env: Record<string, string>; network: boolean };
}

/** Text kept of the workspace as seeded, so a file changed anywhere in a large checkout still gets its diff. */
const BASELINE_MAX_TEXT_CHARS = 32 * 1024 * 1024;
const STDERR_TAIL_CHARS = 2_000;
/** A checkout gets at most this long (and never past the deadline). */
const CHECKOUT_TIMEOUT_MS = 10 * 60_000;

async function runInWorkspace(
  ctx: WorkerContext,
  options: ReferenceWorkerOptions,
  seed: { files: Record<string, string>; repo: TaskSpec["repo"] },
  run: WorkspaceRun,
  fail: (code: string, message: string, extra?: Partial<ExecuteResult>) => ExecuteResult,
): Promise<ExecuteResult> {
  const killGraceMs = options.killGraceMs ?? 2_000;
  const checkTimeoutMs = options.checkTimeoutMs ?? 60_000;
  const maxLogLines = options.maxLogLines ?? 5_000;
  const maxResultChars = options.maxResultChars ?? DEFAULT_MAX_RESULT_CHARS;
  const sandbox = options.sandbox ?? defaultSandbox();
  const { request, workspace } = ctx;

  if (seed.repo) {
    let source: RepoSource;
    try {
      source = repoSource(seed.repo, options.repoPolicy ?? DEFAULT_REPO_POLICY);
    } catch (err) {
      if (err instanceof RepoRefusedError) return fail(err.code, err.message);
      throw err;
    }
    const ref = seed.repo.ref ?? "HEAD";
    ctx.progress(undefined, `checking out ${ref} of ${seed.repo.url}`);
    const checkout = await checkoutRepo(source, ref, {
      sandbox,
      workspaceRoot: workspace.root,
      timeoutMs: Math.min(CHECKOUT_TIMEOUT_MS, Date.parse(request.deadline) - Date.now()),
      killGraceMs,
      signal: ctx.signal,
      log: ctx.log,
    });
    if (!checkout.ok) {
      if (checkout.aborted) {
        const reason = ctx.signal.reason;
        return fail(reason instanceof WorkerAbortError ? reason.code : "canceled", checkout.message);
      }
      return fail(checkout.code, checkout.message);
    }
    ctx.log("info", `checked out ${seed.repo.url} at ${checkout.commit}`);
  }
  try {
    for (const [rel, content] of Object.entries(seed.files)) await workspace.write(rel, content);
  } catch (err) {
    if (err instanceof WorkspacePathError)
      return fail("workspace_path", `Cannot seed spec.input.files: ${err.message}`);
    throw err;
  }
  if (Object.keys(seed.files).length) {
    ctx.log("info", `seeded ${Object.keys(seed.files).length} file(s) into the workspace`);
  }

  const excludeTopLevel = run.ignoreGit || seed.repo ? [".git"] : [];
  const before = await snapshotWorkspace(workspace, { maxTextChars: BASELINE_MAX_TEXT_CHARS, excludeTopLevel });

  const untilDeadline = Date.parse(request.deadline) - Date.now();
  const limits = [
    { ms: untilDeadline, name: "deadline" },
    ...(request.spec.budget.maxDurationSec !== undefined
      ? [{ ms: request.spec.budget.maxDurationSec * 1000, name: "budget.maxDurationSec" }]
      : []),
    ...(run.ownTimeout ? [run.ownTimeout] : []),
  ];
  const limit = limits.reduce((a, b) => (b.ms < a.ms ? b : a));
  const timeoutMs = limit.ms;

  let forwarded = 0;
  let suppressed = 0;
  let stderrTail = "";
  const lower = run.what.toLowerCase();
  ctx.progress(0, `${lower} started`);
  let outcome: ScriptOutcome;
  try {
    outcome = await sandbox.run({
      command: run.command,
      ...(run.stdin !== undefined ? { stdin: run.stdin } : {}),
      ...(run.readOnlyPaths?.length ? { readOnlyPaths: run.readOnlyPaths } : {}),
      workspaceRoot: workspace.root,
      env: run.env,
      network: run.network,
      ...(run.networkGrantedByWorker ? { networkGrantedByWorker: true } : {}),
      timeoutMs,
      signal: ctx.signal,
      killGraceMs,
      maxLineChars: MAX_LINE_CHARS,
      onLine(stream, line) {
        run.onLine?.(stream, line);
        if (stream === "stderr") stderrTail = `${stderrTail}${line}\n`.slice(-STDERR_TAIL_CHARS);
        if (forwarded < maxLogLines) {
          forwarded++;
          ctx.log(stream, line);
        } else suppressed++;
      },
    });
  } catch (err) {
    if (err instanceof SandboxRefusedError) return fail(err.code, err.message);
    throw err;
  }
  if (suppressed) ctx.log("info", `(${suppressed} more output lines were not forwarded; limit ${maxLogLines})`);
  ctx.progress(undefined, `${lower} ${describeExit(outcome)}`);

  const after = await snapshotWorkspace(workspace, { maxTextChars: maxResultChars, baseline: before, excludeTopLevel });
  const { artifacts, omitted } = diffSnapshots(before, after, maxResultChars);
  const counts = { create: 0, modify: 0, delete: 0 };
  for (const a of artifacts) counts[a.operation]++;
  const changes = `${counts.create} created, ${counts.modify} modified, ${counts.delete} deleted${
    omitted ? ` (${omitted} more changes left out)` : ""
  }`;
  const tail = () => (run.stderrTail && stderrTail.trim() ? `\nLast lines on stderr:\n${stderrTail.trimEnd()}` : "");

  if (outcome.aborted) {
    const reason = ctx.signal.reason;
    const code = reason instanceof WorkerAbortError ? reason.code : "canceled";
    const why = reason instanceof Error ? reason.message : "Aborted";
    return fail(code, `${why}; the ${lower === "script" ? "script" : "agent"}'s process group was killed`, {
      artifacts,
    });
  }
  if (outcome.timedOut) {
    const seconds = Math.round(timeoutMs / 100) / 10;
    return fail(
      limit.name === "deadline" ? "deadline_exceeded" : "timeout",
      `${run.what} ran past its ${seconds} s limit (${limit.name}) and its process group was killed${tail()}`,
      { artifacts },
    );
  }
  if (outcome.limit) {
    return fail(LIMIT_CODES[outcome.limit.kind], `${run.what} ${describeExit(outcome)}; ${changes}${tail()}`, {
      artifacts,
    });
  }
  if (outcome.spawnError || outcome.exitCode !== 0) {
    return fail(run.failedCode, `${run.what} ${describeExit(outcome)}; ${changes}${tail()}`, { artifacts });
  }

  const checks = await runChecks(ctx, { killGraceMs, checkTimeoutMs }, sandbox, run.checks.env, run.checks.network);
  const passed = checks.filter((c) => c.passed).length;
  const checkSummary = checks.length ? `; checks ${passed}/${checks.length} passed` : "";
  ctx.progress(100, "done");
  return {
    status: "completed",
    summary: `${run.what} exited with code 0; ${changes}${checkSummary}`,
    artifacts,
    ...(checks.length ? { checks } : {}),
  };
}

export async function runReferenceTask(
  ctx: WorkerContext,
  options: ReferenceWorkerOptions = {},
): Promise<ExecuteResult> {
  const started = performance.now();
  const { request } = ctx;
  const durationMs = () => Math.round(performance.now() - started);
  let reportedUsage: () => Omit<Usage, "durationMs"> = () => ({});
  const withUsage = (result: ExecuteResult): ExecuteResult => ({
    ...result,
    usage: { ...reportedUsage(), durationMs: durationMs() },
  });
  const fail = (code: string, message: string, extra: Partial<ExecuteResult> = {}): ExecuteResult =>
    withUsage({
      status: "failed",
      summary: message.slice(0, 1_000),
      artifacts: [],
      ...extra,
      error: { code, message: message.slice(0, 10_000) },
    });
  const baseEnv = { ...options.env, TASK_ID: request.taskId, TASK_ATTEMPT: String(request.attempt) };

  const agent = options.agents?.get(request.spec.capability);
  if (agent) {
    const input = agentInputSchema.safeParse(request.spec.input);
    if (!input.success) {
      const issues = input.error.issues.map((i) => i.message).join("; ");
      return fail("invalid_input", `Agent '${agent.capability}' cannot use spec.input: ${issues}`);
    }
    const prompt = buildAgentPrompt(request);
    if (agent.prompt === "arg" && Buffer.byteLength(prompt) > MAX_PROMPT_ARG_BYTES) {
      return fail(
        "prompt_too_long",
        `The task's prompt is ${Buffer.byteLength(prompt)} bytes, more than a command-line argument may hold ` +
          `(${MAX_PROMPT_ARG_BYTES}); configure agent '${agent.capability}' with prompt: "stdin"`,
      );
    }
    const usage = createUsageReader(agent.usage);
    reportedUsage = usage.usage;
    const what = `Agent '${agent.capability}'`;
    ctx.log("info", `running ${what}: ${agent.command.join(" ")} (prompt on ${agent.prompt}, ${prompt.length} chars)`);
    const result = await runInWorkspace(
      ctx,
      options,
      { files: input.data.files ?? {}, repo: request.spec.repo },
      {
        what,
        command: agentArgv(agent, prompt),
        ...(agent.prompt === "stdin" ? { stdin: prompt } : {}),
        // Sandboxed, HOME is the private /tmp: what an agent keeps there (sessions, caches) is not part of its result.
        // Unconfined (WORKER_SANDBOX=off), it keeps the worker's HOME, where the operator's own sign-ins live.
        env: {
          ...baseEnv,
          ...agent.envValues,
          ...((options.sandbox ?? defaultSandbox()).mode === "bubblewrap" ? { HOME: "/tmp" } : {}),
          TASK_CAPABILITY: agent.capability,
        },
        network: agent.network,
        networkGrantedByWorker: true,
        readOnlyPaths: agent.readOnlyPaths,
        ...(agent.timeoutMs !== undefined
          ? { ownTimeout: { ms: agent.timeoutMs, name: `timeoutMs of agent '${agent.capability}'` } }
          : {}),
        failedCode: "agent_failed",
        stderrTail: true,
        ignoreGit: true,
        onLine: usage.onLine,
        checks: { env: baseEnv, network: false },
      },
      fail,
    );
    return withUsage(result);
  }

  const input = referenceInputSchema.safeParse(request.spec.input);
  if (!input.success) {
    const issues = input.error.issues.map((i) => i.message).join("; ");
    return fail("invalid_input", `The reference worker needs spec.input.script: ${issues}`);
  }
  const { script, files = {}, network = false } = input.data;
  const result = await runInWorkspace(
    ctx,
    options,
    { files, repo: request.spec.repo },
    {
      what: "Script",
      command: script,
      env: baseEnv,
      network,
      failedCode: "script_failed",
      stderrTail: false,
      ignoreGit: false,
      checks: { env: baseEnv, network },
    },
    fail,
  );
  return withUsage(result);
}

let sharedDefaultSandbox: ScriptSandbox | undefined;
/** One default sandbox per process, so bubblewrap is probed once. */
function defaultSandbox(): ScriptSandbox {
  sharedDefaultSandbox ??= createScriptSandbox();
  return sharedDefaultSandbox;
}

/** The reference worker as an SDK worker, ready to `listen`; tests and the server start it in-process with this. */
export function createReferenceWorker(options: ReferenceWorkerOptions = {}): Worker {
  const sandbox = options.sandbox ?? defaultSandbox();
  return createWorker({
    sandbox: () => sandbox.state(),
    name: options.name ?? "reference",
    capabilities: [...(options.capabilities ?? ["script"]), ...(options.agents?.keys() ?? [])],
    ...(options.token ? { token: options.token } : {}),
    ...(options.maxConcurrency ? { maxConcurrency: options.maxConcurrency } : {}),
    ...(options.workspacesDir ? { workspacesDir: options.workspacesDir } : {}),
    ...(options.version ? { version: options.version } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.abortGraceMs !== undefined ? { abortGraceMs: options.abortGraceMs } : {}),
    ...(options.keepWorkspaces !== undefined ? { keepWorkspaces: options.keepWorkspaces } : {}),
    ...(options.heartbeatMs !== undefined ? { heartbeatMs: options.heartbeatMs } : {}),
    ...(options.detachedGraceMs !== undefined ? { detachedGraceMs: options.detachedGraceMs } : {}),
    handle: (ctx) => runReferenceTask(ctx, { ...options, sandbox }),
  });
}

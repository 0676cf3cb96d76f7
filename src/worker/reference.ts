import { z } from "zod";
import { toStorableText } from "../shared/text.js";
import type { CheckResult, ExecuteResult } from "../shared/worker-protocol.js";
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
 * `spec.input.files`, a map of relative path to text), streams its output line by line, reports the files it
 * created, modified or deleted as artifacts with unified diffs, then runs the acceptance criteria's command checks.
 * Scripts and checks run in the sandbox (`sandbox.ts`); `spec.input.network: true` asks for network access, which
 * the sandbox grants only when the worker allows it.
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
}

export const referenceInputSchema = z.looseObject({
  script: z
    .string({ error: "spec.input.script must be a string: the bash script to run in the task's workspace" })
    .min(1, "spec.input.script must not be empty"),
  files: z
    .record(z.string(), z.string(), { error: "spec.input.files must map relative paths to text contents" })
    .optional(),
  network: z.boolean({ error: "spec.input.network must be true or false" }).optional(),
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

export async function runReferenceTask(
  ctx: WorkerContext,
  options: ReferenceWorkerOptions = {},
): Promise<ExecuteResult> {
  const started = performance.now();
  const killGraceMs = options.killGraceMs ?? 2_000;
  const checkTimeoutMs = options.checkTimeoutMs ?? 60_000;
  const maxLogLines = options.maxLogLines ?? 5_000;
  const maxResultChars = options.maxResultChars ?? DEFAULT_MAX_RESULT_CHARS;
  const { request, workspace } = ctx;
  const durationMs = () => Math.round(performance.now() - started);
  const fail = (code: string, message: string, extra: Partial<ExecuteResult> = {}): ExecuteResult => ({
    status: "failed",
    summary: message.slice(0, 1_000),
    artifacts: [],
    ...extra,
    error: { code, message: message.slice(0, 10_000) },
    usage: { durationMs: durationMs() },
  });

  const input = referenceInputSchema.safeParse(request.spec.input);
  if (!input.success) {
    const issues = input.error.issues.map((i) => i.message).join("; ");
    return fail("invalid_input", `The reference worker needs spec.input.script: ${issues}`);
  }
  const { script, files = {}, network = false } = input.data;
  const sandbox = options.sandbox ?? defaultSandbox();

  try {
    for (const [rel, content] of Object.entries(files)) await workspace.write(rel, content);
  } catch (err) {
    if (err instanceof WorkspacePathError)
      return fail("workspace_path", `Cannot seed spec.input.files: ${err.message}`);
    throw err;
  }
  if (Object.keys(files).length) ctx.log("info", `seeded ${Object.keys(files).length} file(s) into the workspace`);

  const snapshotLimits = { maxTextChars: maxResultChars };
  const before = await snapshotWorkspace(workspace, snapshotLimits);
  const env = { ...options.env, TASK_ID: request.taskId, TASK_ATTEMPT: String(request.attempt) };

  const untilDeadline = Date.parse(request.deadline) - Date.now();
  const budgetMs =
    request.spec.budget.maxDurationSec !== undefined ? request.spec.budget.maxDurationSec * 1000 : Infinity;
  const limitedBy = budgetMs < untilDeadline ? "budget.maxDurationSec" : "deadline";
  const timeoutMs = Math.min(budgetMs, untilDeadline);

  let forwarded = 0;
  let suppressed = 0;
  ctx.progress(0, "script started");
  let outcome: ScriptOutcome;
  try {
    outcome = await sandbox.run({
      command: script,
      workspaceRoot: workspace.root,
      env,
      network,
      timeoutMs,
      signal: ctx.signal,
      killGraceMs,
      maxLineChars: MAX_LINE_CHARS,
      onLine(stream, line) {
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
  ctx.progress(undefined, `script ${describeExit(outcome)}`);

  const after = await snapshotWorkspace(workspace, snapshotLimits);
  const { artifacts, omitted } = diffSnapshots(before, after, maxResultChars);
  const counts = { create: 0, modify: 0, delete: 0 };
  for (const a of artifacts) counts[a.operation]++;
  const changes = `${counts.create} created, ${counts.modify} modified, ${counts.delete} deleted${
    omitted ? ` (${omitted} more changes left out)` : ""
  }`;

  if (outcome.aborted) {
    const reason = ctx.signal.reason;
    const code = reason instanceof WorkerAbortError ? reason.code : "canceled";
    const why = reason instanceof Error ? reason.message : "Aborted";
    return fail(code, `${why}; the script's process group was killed`, { artifacts });
  }
  if (outcome.timedOut) {
    const seconds = Math.round(timeoutMs / 100) / 10;
    return fail(
      limitedBy === "deadline" ? "deadline_exceeded" : "timeout",
      `Script ran past its ${seconds} s limit (${limitedBy}) and its process group was killed`,
      { artifacts },
    );
  }
  if (outcome.limit) {
    return fail(LIMIT_CODES[outcome.limit.kind], `Script ${describeExit(outcome)}; ${changes}`, { artifacts });
  }
  if (outcome.spawnError || outcome.exitCode !== 0) {
    return fail("script_failed", `Script ${describeExit(outcome)}; ${changes}`, { artifacts });
  }

  const checks = await runChecks(ctx, { killGraceMs, checkTimeoutMs }, sandbox, env, network);
  const passed = checks.filter((c) => c.passed).length;
  const checkSummary = checks.length ? `; checks ${passed}/${checks.length} passed` : "";
  ctx.progress(100, "done");
  return {
    status: "completed",
    summary: `Script exited with code 0; ${changes}${checkSummary}`,
    artifacts,
    ...(checks.length ? { checks } : {}),
    usage: { durationMs: durationMs() },
  };
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
    capabilities: options.capabilities ?? ["script"],
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

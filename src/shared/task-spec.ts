import { z } from "zod";
import { compileCheckPattern } from "./check-pattern.js";
import { MODES, PRIORITIES } from "./task-vocabulary.js";
import { jsonProblem, safeText } from "./text.js";

export * from "./task-vocabulary.js";

export const LIMITS = {
  title: 200,
  description: 10_000,
  capability: 64,
  criteria: 50,
  criterionText: 1_000,
  checkCommand: 2_000,
  checkPattern: 500,
  globs: 100,
  glob: 300,
  inputKeys: 50,
  inputBytes: 64 * 1024,
  /** Levels of objects and arrays in `input`, the input object itself being the first. */
  inputDepth: 32,
} as const;

const trimmed = (max: number, what: string) =>
  safeText(z.string().trim().max(max, `${what} must be at most ${max} characters`));

/** An automated check: a command the worker runs in the task's workspace, or a pattern an artifact must (not) contain. */
export const acceptanceCheckSchema = z.discriminatedUnion("kind", [
  z.object({
    kind: z.literal("command"),
    command: trimmed(LIMITS.checkCommand, "Check command").min(1, "Check command is required"),
  }),
  z
    .object({
      kind: z.literal("pattern"),
      /** RE2 syntax (linear-time matching); compiled here so an invalid or unsupported one is refused at create. */
      pattern: trimmed(LIMITS.checkPattern, "Check pattern").min(1, "Check pattern is required"),
      /** Regex-literal flags: i and s change matching; m and u are always on. */
      flags: z.string().optional(),
      mustMatch: z.boolean().default(true),
      path: trimmed(LIMITS.glob, "Check path").optional(),
    })
    .superRefine((check, ctx) => {
      const compiled = compileCheckPattern(check.pattern, check.flags);
      if (!compiled.ok) ctx.addIssue({ code: "custom", path: [compiled.field], message: compiled.message });
    }),
]);
export type AcceptanceCheck = z.infer<typeof acceptanceCheckSchema>;

export const acceptanceCriterionSchema = z.object({
  text: trimmed(LIMITS.criterionText, "Criterion").min(1, "Criterion text is required"),
  check: acceptanceCheckSchema.optional(),
});
export type AcceptanceCriterion = z.infer<typeof acceptanceCriterionSchema>;

const globSchema = trimmed(LIMITS.glob, "Glob").min(1, "Glob must not be empty");

export const scopeSchema = z.object({
  include: z.array(globSchema).max(LIMITS.globs, `At most ${LIMITS.globs} include globs`).default([]),
  exclude: z.array(globSchema).max(LIMITS.globs, `At most ${LIMITS.globs} exclude globs`).default([]),
});

export const budgetSchema = z.object({
  maxFiles: z
    .number()
    .int()
    .min(1, "Max files must be at least 1")
    .max(10_000, "Max files must be at most 10000")
    .optional(),
  maxLinesChanged: z
    .number()
    .int()
    .min(1, "Max lines changed must be at least 1")
    .max(1_000_000, "Max lines changed must be at most 1000000")
    .optional(),
  maxDurationSec: z
    .number()
    .int()
    .min(1, "Max duration must be at least 1 second")
    .max(86_400, "Max duration must be at most 24 hours")
    .optional(),
  /** The most one attempt may cost, in US dollars, by the worker's own report (`usage.costUsd`). */
  maxCostUsd: z
    .number()
    .positive("Max cost must be more than 0")
    .max(100_000, "Max cost must be at most 100000 USD")
    .refine((n) => Math.abs(n * 1e6 - Math.round(n * 1e6)) < 1e-6, "Max cost may have at most 6 decimal places")
    .optional(),
});

/** Free input for the worker: a JSON object of bounded size (for the reference worker, `{ script }`). */
export const workerInputSchema = z
  .record(z.string().max(100), z.unknown())
  .refine((o) => Object.keys(o).length <= LIMITS.inputKeys, `Input may have at most ${LIMITS.inputKeys} keys`)
  .check((ctx) => {
    // Walked without recursion before anything serializes it: deep nesting gets a message, not a stack overflow.
    const problem = jsonProblem(ctx.value, { maxDepth: LIMITS.inputDepth, checkText: true, plainJsonOnly: true });
    if (problem) {
      // A depth problem is named at the input itself: its path would be the 33 keys leading down to it.
      const path = problem.kind === "depth" ? [] : problem.path;
      ctx.issues.push({ code: "custom", input: ctx.value, path, message: `Input ${problem.message}` });
    } else if (JSON.stringify(ctx.value).length > LIMITS.inputBytes) {
      ctx.issues.push({
        code: "custom",
        input: ctx.value,
        message: `Input must be at most ${LIMITS.inputBytes / 1024} KiB of JSON`,
      });
    }
  });

/**
 * A git checkout made in the task's workspace before the worker runs: `url` is an https URL without credentials, or a
 * local repository (`file:///…` or an absolute path); `ref` a branch, tag or commit (default: the remote's HEAD).
 * Which hosts and local directories may be checked out is the worker's decision (the reference worker's
 * WORKER_GIT_ALLOWED_HOSTS and WORKER_GIT_LOCAL_ROOTS).
 */
export const repoSchema = z.object({
  url: trimmed(2_000, "Repository URL")
    .min(1, "Repository URL is required")
    .check((ctx) => {
      const problem = repoUrlProblem(ctx.value);
      if (problem) ctx.issues.push({ code: "custom", input: ctx.value, message: problem });
    }),
  ref: trimmed(200, "Repository ref")
    .regex(
      /^(?![-/.])(?!.*(?:\.\.|\/\/|@\{|\.lock$|\/$|\.$))[A-Za-z0-9._/+@-]+$/,
      "Repository ref must be a branch, tag or commit: letters, digits and . _ / + @ -, not starting with - / or .",
    )
    .optional(),
});
export type RepoSpec = z.infer<typeof repoSchema>;

/** Why `url` cannot name a repository to check out, or null. */
export function repoUrlProblem(url: string): string | null {
  if (url.startsWith("/")) return url.split("/").includes("..") ? "Repository path must not contain '..'" : null;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "Repository URL must be an https:// URL, a file:/// URL or an absolute path";
  }
  if (parsed.protocol === "file:") {
    return parsed.host ? "A file:// repository URL must not name a host (file:///path)" : null;
  }
  if (parsed.protocol !== "https:") return `Repository URL must use https:// (not ${parsed.protocol}//)`;
  if (parsed.username || parsed.password) {
    return "Repository URL must not carry credentials (they would be stored and shown with the task)";
  }
  return null;
}

export const taskSpecSchema = z.object({
  title: trimmed(LIMITS.title, "Title").min(1, "Title is required"),
  description: trimmed(LIMITS.description, "Description").default(""),
  priority: z.enum(PRIORITIES, { error: "Priority must be low, medium, high or critical" }).default("medium"),
  riskTier: z.union([z.literal(1), z.literal(2), z.literal(3)], { error: "Risk tier must be 1, 2 or 3" }).default(2),
  mode: z.enum(MODES, { error: "Mode must be feature, fix, refactor or chore" }).default("feature"),
  capability: trimmed(LIMITS.capability, "Capability")
    .min(1, "Required capability is required")
    .regex(/^[a-z0-9][a-z0-9._-]*$/, "Capability may contain only a-z, 0-9, '.', '_' and '-'")
    .default("script"),
  acceptanceCriteria: z
    .array(acceptanceCriterionSchema)
    .max(LIMITS.criteria, `At most ${LIMITS.criteria} acceptance criteria`)
    .default([]),
  scope: scopeSchema.default({ include: [], exclude: [] }),
  budget: budgetSchema.default({}),
  input: workerInputSchema.default({}),
  repo: repoSchema.optional(),
});

/** The reference worker's capability: it runs `input.script` in the task's workspace. */
export const SCRIPT_CAPABILITY = "script";

/**
 * Why a task for the reference worker's `script` capability could only fail: it has no script.
 * The console's form and chat's /task refuse such a task with this message; null when it has one.
 */
export function missingScript(spec: { capability: string; input: Record<string, unknown> }): string | null {
  if (spec.capability !== SCRIPT_CAPABILITY) return null;
  const script = spec.input.script;
  return typeof script === "string" && script.trim() !== ""
    ? null
    : "A script task needs a script: the reference worker runs it in the task's workspace";
}

/** What a client sends (defaults not yet applied). */
export type TaskSpecInput = z.input<typeof taskSpecSchema>;
/** A validated spec, as stored. */
export type TaskSpec = z.output<typeof taskSpecSchema>;

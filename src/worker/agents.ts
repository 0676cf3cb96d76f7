import { accessSync, constants as fsConstants, readFileSync, realpathSync, statSync } from "node:fs";
import path from "node:path";
import { RE2JS } from "re2js";
import { z } from "zod";
import type { ExecuteRequest, ExecuteResult } from "../shared/worker-protocol.js";
import { SANDBOX_BASE_ENV, SANDBOX_WORKSPACE } from "./sandbox.js";

/**
 * Command-line coding agents as workers: a command per capability (`claude -p`, `codex exec`, `aider --message`,
 * `gemini -p`, or any program), configured by WORKER_AGENTS (JSON) or WORKER_AGENTS_FILE (a JSON file), e.g.
 *
 *   { "claude": { "command": ["claude", "-p", "--output-format", "json"], "prompt": "stdin", "network": true,
 *                 "env": ["ANTHROPIC_API_KEY"], "timeoutMs": 1800000,
 *                 "usage": { "json": { "inputTokens": "usage.input_tokens", "outputTokens": "usage.output_tokens",
 *                                      "costUsd": "total_cost_usd", "model": "model" } } } }
 *
 * The reference worker runs the command in the task's sandboxed workspace with the task's prompt (`buildAgentPrompt`)
 * on stdin or as its last argument, and reports what changed there like a script's changes. Everything here is
 * checked when the worker starts, so a typo stops it with a message naming the field instead of failing tasks later.
 */

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Variables the sandbox sets itself, or that belong to the worker: never passed through to an agent. */
const RESERVED_ENV = new Set([...Object.keys(SANDBOX_BASE_ENV), "TASK_ID", "TASK_ATTEMPT", "PWD", "OLDPWD"]);
const RESERVED_ENV_PREFIXES = ["WORKER_", "AGENCY_", "DATABASE_", "DATA_DIR"];
/** Mount points the sandbox makes itself: a read-only path there would clash with them. */
const SANDBOX_OWN_PATHS = ["/proc", "/dev", "/tmp", SANDBOX_WORKSPACE, "/etc/passwd", "/etc/group", "/etc/hosts"];
/** Linux refuses a single argument longer than this (MAX_ARG_STRLEN), so a longer prompt must go on stdin. */
export const MAX_PROMPT_ARG_BYTES = 128 * 1024 - 1;

/** A dotted path into a JSON object; `*` stands for every key at that level (their values are added up). */
const jsonPath = z
  .string()
  .regex(/^[A-Za-z0-9_$*-]+(?:\.[A-Za-z0-9_$*-]+)*$/, "must be a dotted path such as usage.input_tokens");

const re2Pattern = z
  .string()
  .min(1)
  .max(500)
  .check((ctx) => {
    try {
      const re = RE2JS.compile(ctx.value);
      if (re.groupCount() < 1) {
        ctx.issues.push({ code: "custom", input: ctx.value, message: "must have a capture group for the number" });
      }
    } catch (err) {
      ctx.issues.push({
        code: "custom",
        input: ctx.value,
        message: `is not a valid RE2 regular expression: ${(err as Error).message}`,
      });
    }
  });

const USAGE_FIELDS = ["inputTokens", "outputTokens", "costUsd"] as const;
type UsageField = (typeof USAGE_FIELDS)[number];
const modelName = z.string().min(1, "model must not be empty").max(100, "model may have at most 100 characters");

const usageSchema = z
  .strictObject({
    /** Output lines that are JSON objects: where each figure is. */
    json: z
      .strictObject({
        inputTokens: jsonPath.optional(),
        outputTokens: jsonPath.optional(),
        costUsd: jsonPath.optional(),
        /** Where the model's name is (a string): the last one seen is reported. */
        model: jsonPath.optional(),
        /** Only lines whose values at these paths equal these (e.g. `{ "type": "result" }`). */
        match: z.record(jsonPath, z.union([z.string(), z.number(), z.boolean()])).optional(),
      })
      .optional(),
    /** RE2 patterns over each output line; the first capture group is the number (`2.3k`, `1,204`, `$0.01` read). */
    regex: z
      .strictObject({
        inputTokens: re2Pattern.optional(),
        outputTokens: re2Pattern.optional(),
        costUsd: re2Pattern.optional(),
        /** The first capture group is the model's name. */
        model: re2Pattern.optional(),
      })
      .optional(),
    /** The model this command runs, reported when its output does not name one. */
    model: modelName.optional(),
    /** "last": the last figure seen wins (a final summary line); "sum": figures of all lines are added (per turn). */
    combine: z.enum(["last", "sum"]).default("last"),
    /** Which output the lines come from; default both. */
    stream: z.enum(["stdout", "stderr", "both"]).default("both"),
  })
  .refine((u) => u.json || u.regex || u.model, "usage needs json, regex or model (or leave usage out)");

export const agentConfigSchema = z.strictObject({
  /** The program and its arguments; the program is looked up in the sandbox's PATH unless it is an absolute path. */
  command: z
    .array(z.string().min(1, "an argument must not be empty").max(4_096), {
      error: "command must be an array of strings: the program and its arguments",
    })
    .min(1, "command must name a program")
    .max(100),
  /** "stdin": the prompt is the command's input; "arg": it is its last argument (or replaces a "{prompt}" argument). */
  prompt: z.enum(["stdin", "arg"], { error: "prompt must be 'stdin' or 'arg'" }).default("stdin"),
  /** Shares the host's network with the command (it calls its model's API); default off. */
  network: z.boolean({ error: "network must be true or false" }).default(false),
  /** Names of the worker's environment variables passed to this command only (API keys). */
  env: z.array(z.string().regex(ENV_NAME, "each env entry must be a variable name")).max(50).default([]),
  /** The command is stopped after this long (the task's budget and deadline still apply). */
  timeoutMs: z.number().int().min(1_000).max(86_400_000).optional(),
  /** Host directories or files made visible read-only at the same path (an agent installed outside /usr). */
  readOnlyPaths: z.array(z.string().startsWith("/", "each read-only path must be absolute")).max(20).default([]),
  usage: usageSchema.optional(),
});
export type AgentConfig = z.output<typeof agentConfigSchema>;

const capabilityName = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const agentsSchema = z.record(z.string(), agentConfigSchema).check((ctx) => {
  for (const name of Object.keys(ctx.value)) {
    if (!capabilityName.test(name)) {
      ctx.issues.push({
        code: "custom",
        input: name,
        path: [name],
        message: "an agent's capability may contain only a-z, 0-9, '.', '_' and '-'",
      });
    }
  }
});

/** A configured agent, checked against this machine and with its environment values read. */
export interface Agent extends AgentConfig {
  capability: string;
  /** The passed-through variables with their values, read once at start. */
  envValues: Record<string, string>;
}

export interface LoadAgentsOptions {
  /** WORKER_AGENTS (JSON text), or undefined. */
  json?: string | undefined;
  /** WORKER_AGENTS_FILE, or undefined. */
  file?: string | undefined;
  /** The worker's environment, for `env` passthrough. */
  env: NodeJS.ProcessEnv;
  /** Capabilities served by scripts: an agent must not have one of these names. */
  scriptCapabilities: readonly string[];
  workspacesDir: string;
  /** Whether commands run in the bubblewrap sandbox (so must be visible inside it) or unconfined. */
  sandboxed: boolean;
}

const isInside = (parent: string, p: string) => p === parent || p.startsWith(parent === "/" ? "/" : `${parent}/`);

/** Where the program would be found: visible inside the sandbox (toolchain or read-only paths), or why not. */
function programProblem(program: string, agent: AgentConfig, sandboxed: boolean, env: NodeJS.ProcessEnv) {
  const executable = (p: string) => {
    try {
      if (!statSync(p).isFile()) return false;
      accessSync(p, fsConstants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  const real = (p: string) => {
    try {
      return realpathSync(p);
    } catch {
      return p;
    }
  };
  // The sandbox binds these at the same paths, so a program (or the file its symlinks lead to) under one of them can
  // be run there.
  const visibleRoots = ["/usr", "/bin", "/sbin", "/lib", "/lib64", ...agent.readOnlyPaths].map(real);
  const invisible = (file: string) => {
    if (!sandboxed) return null;
    const target = real(file);
    if (visibleRoots.some((root) => isInside(root, target))) return null;
    const via = target === file ? "" : ` (a link to '${target}')`;
    return `command[0] '${file}'${via} is not visible inside the sandbox: add its directory to readOnlyPaths`;
  };
  if (program.includes("/")) {
    if (!program.startsWith("/")) return `command[0] must be a program name or an absolute path, not '${program}'`;
    if (!executable(program)) return `command[0] '${program}' is not an executable file`;
    return invisible(program);
  }
  const searchPath = sandboxed ? (SANDBOX_BASE_ENV.PATH as string) : (env.PATH ?? "");
  const found = searchPath
    .split(":")
    .map((dir) => (dir ? path.join(dir, program) : ""))
    .find((candidate) => candidate && executable(candidate));
  if (found) return invisible(found);
  return (
    `command[0] '${program}' was not found in ${sandboxed ? "the sandbox's" : "the worker's"} PATH (${searchPath}); ` +
    "give its absolute path (and, sandboxed, its directory in readOnlyPaths)"
  );
}

/**
 * Reads and checks WORKER_AGENTS / WORKER_AGENTS_FILE: the JSON's shape, each agent's program (it exists and the
 * sandbox can see it), its read-only paths (they exist and expose nothing of the worker's: not the workspaces, not a
 * mount the sandbox makes itself) and its passed-through variables (set, and not the worker's own). Throws an Error
 * whose message lists every problem by field.
 */
export function loadAgents(options: LoadAgentsOptions): Map<string, Agent> {
  const agents = new Map<string, Agent>();
  let text = options.json;
  let source = "WORKER_AGENTS";
  if (options.file) {
    source = `WORKER_AGENTS_FILE (${options.file})`;
    try {
      text = readFileSync(options.file, "utf8");
    } catch (err) {
      throw new Error(`${source}: cannot be read: ${(err as Error).message}`);
    }
  }
  if (text === undefined) return agents;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`${source}: is not valid JSON: ${(err as Error).message}`);
  }
  const parsed = agentsSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${["agents", ...i.path].join(".")}: ${i.message}`);
    throw new Error(`${source} is not a valid agent configuration:\n${lines.join("\n")}`);
  }
  const problems: string[] = [];
  const workspaces = path.resolve(options.workspacesDir);
  for (const [capability, config] of Object.entries(parsed.data)) {
    const at = (msg: string) => problems.push(`  agents.${capability}: ${msg}`);
    if (options.scriptCapabilities.includes(capability)) {
      at(`'${capability}' is also in WORKER_CAPABILITIES (a script capability); give the agent another name`);
    }
    for (const p of config.readOnlyPaths) {
      const resolved = path.resolve(p);
      if (resolved !== p.replace(/\/+$/, "") || p.split("/").includes("..")) {
        at(`readOnlyPaths '${p}' must be a normalised absolute path`);
      } else if (resolved === "/") at("readOnlyPaths must not include '/'");
      else if (SANDBOX_OWN_PATHS.some((own) => isInside(own, resolved) || isInside(resolved, own))) {
        at(`readOnlyPaths '${p}' overlaps a mount the sandbox makes itself (${SANDBOX_OWN_PATHS.join(", ")})`);
      } else if (isInside(resolved, workspaces) || isInside(workspaces, resolved)) {
        at(`readOnlyPaths '${p}' would expose the workspaces directory (${workspaces}) to the agent`);
      } else {
        try {
          statSync(resolved);
        } catch {
          at(`readOnlyPaths '${p}' does not exist`);
        }
      }
    }
    const program = programProblem(config.command[0] as string, config, options.sandboxed, options.env);
    if (program) at(program);
    if (config.prompt === "arg" && config.command.filter((a) => a === "{prompt}").length > 1) {
      at("command may hold '{prompt}' once");
    }
    if (config.prompt === "stdin" && config.command.includes("{prompt}")) {
      at("command holds '{prompt}' but prompt is 'stdin'; set prompt to 'arg'");
    }
    const envValues: Record<string, string> = {};
    for (const name of config.env) {
      if (RESERVED_ENV.has(name) || RESERVED_ENV_PREFIXES.some((prefix) => name.startsWith(prefix))) {
        at(`env '${name}' is set by the sandbox or belongs to the worker; it cannot be passed through`);
        continue;
      }
      const value = options.env[name];
      if (value === undefined || value === "") at(`env '${name}' is not set in the worker's environment`);
      else envValues[name] = value;
    }
    agents.set(capability, { ...config, capability, envValues });
  }
  if (problems.length) throw new Error(`${source} is not a valid agent configuration:\n${problems.join("\n")}`);
  return agents;
}

/**
 * The task as an agent reads it: title, mode, description, acceptance criteria (with the command or pattern that
 * checks each), scope and budget, and what the review of the previous attempt asked to change.
 */
export function buildAgentPrompt(request: ExecuteRequest): string {
  const { spec, critique } = request;
  const parts: string[] = [`# ${spec.title}`, `Mode: ${spec.mode}.`];
  if (spec.description) parts.push(spec.description);
  if (spec.acceptanceCriteria.length) {
    const lines = spec.acceptanceCriteria.map((c, i) => {
      const check =
        c.check?.kind === "command"
          ? ` (checked by running \`${c.check.command}\`, which must exit 0)`
          : c.check?.kind === "pattern"
            ? ` (checked: ${c.check.path ? `files matching ${c.check.path}` : "the changed files"} must ${
                c.check.mustMatch ? "" : "not "
              }match /${c.check.pattern}/${c.check.flags ?? ""})`
            : "";
      return `${i + 1}. ${c.text}${check}`;
    });
    parts.push(`## Acceptance criteria\n${lines.join("\n")}`);
  }
  const rules: string[] = [];
  if (spec.scope.include.length) rules.push(`Change only files matching: ${spec.scope.include.join(", ")}.`);
  if (spec.scope.exclude.length) rules.push(`Do not change files matching: ${spec.scope.exclude.join(", ")}.`);
  if (spec.budget.maxFiles !== undefined) rules.push(`Change at most ${spec.budget.maxFiles} files.`);
  if (spec.budget.maxLinesChanged !== undefined) rules.push(`Change at most ${spec.budget.maxLinesChanged} lines.`);
  rules.push(
    "Work in the current directory: the files you create, change or delete there are your result. " +
      "Complete the work; leave no placeholder (TODO, FIXME, unimplemented) in it.",
  );
  parts.push(`## Rules\n${rules.join("\n")}`);
  if (critique) {
    const verdict = critique.verdict === "reject" ? "rejected" : "asked for changes to";
    const findings = critique.findings.map((f) => {
      const where = f.path ? `${f.path}${f.line ? `:${f.line}` : ""}: ` : "";
      const snippet = f.snippet ? ` — \`${f.snippet}\`` : "";
      return `- [${f.severity}] ${where}${f.message}${snippet}`;
    });
    parts.push(
      [
        `## Review of attempt ${critique.fromAttempt}`,
        `The review ${verdict} attempt ${critique.fromAttempt}. Address every point.`,
        critique.rationale,
        ...(findings.length ? ["Findings:", ...findings] : []),
      ]
        .filter(Boolean)
        .join("\n"),
    );
  }
  return `${parts.join("\n\n")}\n`;
}

/** The command line that runs `agent` with `prompt`: the prompt in place of "{prompt}", else appended. */
export function agentArgv(agent: AgentConfig, prompt: string): string[] {
  if (agent.prompt === "stdin") return [...agent.command];
  const at = agent.command.indexOf("{prompt}");
  return at === -1 ? [...agent.command, prompt] : agent.command.map((a, i) => (i === at ? prompt : a));
}

type Usage = NonNullable<ExecuteResult["usage"]>;

/** `1,204` → 1204, `2.3k` → 2300, `1.5M` → 1500000, `$0.0123` → 0.0123; undefined for anything else. */
export function parseFigure(raw: unknown): number | undefined {
  if (typeof raw === "number") return Number.isFinite(raw) && raw >= 0 ? raw : undefined;
  if (typeof raw !== "string") return undefined;
  const match = /^\$?\s*([0-9][0-9,]*(?:\.[0-9]+)?|\.[0-9]+)\s*([kKmM])?$/.exec(raw.trim());
  if (!match) return undefined;
  const n = Number((match[1] as string).replaceAll(",", ""));
  const scale = match[2] ? (match[2].toLowerCase() === "k" ? 1_000 : 1_000_000) : 1;
  return Number.isFinite(n) ? n * scale : undefined;
}

/** The values at `dotted` in `value` (several when a segment is `*`). */
function valuesAt(value: unknown, dotted: string): unknown[] {
  let current: unknown[] = [value];
  for (const key of dotted.split(".")) {
    const next: unknown[] = [];
    for (const v of current) {
      if (typeof v !== "object" || v === null || Array.isArray(v)) continue;
      if (key === "*") next.push(...Object.values(v));
      else if (Object.hasOwn(v, key)) next.push((v as Record<string, unknown>)[key]);
    }
    current = next;
  }
  return current;
}

export interface UsageReader {
  onLine(stream: "stdout" | "stderr", line: string): void;
  /** What the output reported, as the protocol's usage fields (tokens rounded to integers). */
  usage(): Omit<Usage, "durationMs">;
}

/** Reads the figures an agent reports in its output, as its `usage` configuration describes. */
export function createUsageReader(config: AgentConfig["usage"]): UsageReader {
  const totals: Partial<Record<UsageField, number>> = {};
  const regexes = config?.regex
    ? USAGE_FIELDS.flatMap((field) => {
        const pattern = config.regex?.[field];
        return pattern ? [{ field, re: RE2JS.compile(pattern) }] : [];
      })
    : [];
  const record = (field: UsageField, n: number) => {
    totals[field] = config?.combine === "sum" ? (totals[field] ?? 0) + n : n;
  };
  const modelRegex = config?.regex?.model ? RE2JS.compile(config.regex.model) : null;
  let model: string | undefined;
  const recordModel = (raw: unknown) => {
    const name = typeof raw === "string" ? raw.trim() : "";
    if (modelName.safeParse(name).success) model = name;
  };
  return {
    onLine(stream, line) {
      if (!config || (config.stream !== "both" && config.stream !== stream)) return;
      const json = config.json;
      if (json && line.startsWith("{")) {
        let value: unknown;
        try {
          value = JSON.parse(line);
        } catch {
          value = undefined;
        }
        const matches =
          value !== undefined &&
          Object.entries(json.match ?? {}).every(([p, expected]) => valuesAt(value, p).some((v) => v === expected));
        if (matches) {
          for (const field of USAGE_FIELDS) {
            const p = json[field];
            if (!p) continue;
            const figures = valuesAt(value, p).flatMap((v) => {
              const n = parseFigure(v);
              return n === undefined ? [] : [n];
            });
            if (figures.length)
              record(
                field,
                figures.reduce((a, b) => a + b, 0),
              );
          }
          if (json.model) for (const v of valuesAt(value, json.model)) recordModel(v);
        }
      }
      if (modelRegex) {
        const m = modelRegex.matcher(line);
        if (m.find()) recordModel(m.group(1));
      }
      for (const { field, re } of regexes) {
        const m = re.matcher(line);
        if (!m.find()) continue;
        const n = parseFigure(m.group(1));
        if (n !== undefined) record(field, n);
      }
    },
    usage() {
      const out: Omit<Usage, "durationMs"> = {};
      if (totals.inputTokens !== undefined) out.inputTokens = Math.round(totals.inputTokens);
      if (totals.outputTokens !== undefined) out.outputTokens = Math.round(totals.outputTokens);
      if (totals.costUsd !== undefined) out.costUsd = totals.costUsd;
      const named = model ?? config?.model;
      if (named !== undefined) out.model = named;
      return out;
    },
  };
}

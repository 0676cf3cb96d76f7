import type { z } from "zod";
import type { Mode, Priority, RiskTier, TaskSpec, TaskSpecInput } from "../../shared/task-spec.js";
import { missingScript, taskSpecSchema } from "../../shared/task-spec.js";

export type CheckKind = "none" | "command" | "pattern";

export interface CriterionForm {
  /** Stable React key; criteria have no id of their own. */
  key: number;
  text: string;
  checkKind: CheckKind;
  command: string;
  pattern: string;
  mustMatch: boolean;
  path: string;
  /** A pattern's regex flags: the form has no box for them, but a rerun keeps the original's. */
  flags?: string;
}

export interface SpecForm {
  title: string;
  description: string;
  priority: Priority;
  riskTier: RiskTier;
  mode: Mode;
  capability: string;
  criteria: CriterionForm[];
  include: string;
  exclude: string;
  maxFiles: string;
  maxLinesChanged: string;
  maxDurationSec: string;
  maxCostUsd: string;
  inputJson: string;
  script: string;
}

export const emptyForm = (): SpecForm => ({
  title: "",
  description: "",
  priority: "medium",
  riskTier: 2,
  mode: "feature",
  capability: "script",
  criteria: [],
  include: "",
  exclude: "",
  maxFiles: "",
  maxLinesChanged: "",
  maxDurationSec: "",
  maxCostUsd: "",
  inputJson: "{}",
  script: "",
});

let nextKey = 1;
export const emptyCriterion = (): CriterionForm => ({
  key: nextKey++,
  text: "",
  checkKind: "none",
  command: "",
  pattern: "",
  mustMatch: true,
  path: "",
});

/** A stored spec as the form shows it (a rerun's starting point): the script in its own box, the rest as JSON. */
export function formFromSpec(spec: TaskSpec): SpecForm {
  const { script, ...rest } = spec.input as Record<string, unknown>;
  const scriptInBox = typeof script === "string";
  const otherInput = scriptInBox ? rest : (spec.input as Record<string, unknown>);
  return {
    title: spec.title,
    description: spec.description,
    priority: spec.priority,
    riskTier: spec.riskTier,
    mode: spec.mode,
    capability: spec.capability,
    criteria: spec.acceptanceCriteria.map((c) => ({
      ...emptyCriterion(),
      text: c.text,
      checkKind: c.check?.kind ?? "none",
      ...(c.check?.kind === "command" ? { command: c.check.command } : {}),
      ...(c.check?.kind === "pattern"
        ? {
            pattern: c.check.pattern,
            mustMatch: c.check.mustMatch,
            path: c.check.path ?? "",
            ...(c.check.flags ? { flags: c.check.flags } : {}),
          }
        : {}),
    })),
    include: spec.scope.include.join("\n"),
    exclude: spec.scope.exclude.join("\n"),
    maxFiles: spec.budget.maxFiles?.toString() ?? "",
    maxLinesChanged: spec.budget.maxLinesChanged?.toString() ?? "",
    maxDurationSec: spec.budget.maxDurationSec?.toString() ?? "",
    maxCostUsd: spec.budget.maxCostUsd?.toString() ?? "",
    inputJson: JSON.stringify(otherInput, null, 2),
    script: scriptInBox ? script : "",
  };
}

/** Error messages by field path, dotted as in the schema: `title`, `budget.maxFiles`, `acceptanceCriteria.0.text`. */
export type FieldErrors = Record<string, string[]>;

export function addError(errors: FieldErrors, path: string, message: string): void {
  const list = errors[path] ?? [];
  if (!list.includes(message)) list.push(message);
  errors[path] = list;
}

export function errorsFromIssues(issues: readonly { path: readonly PropertyKey[]; message: string }[]): FieldErrors {
  const errors: FieldErrors = {};
  for (const i of issues) addError(errors, i.path.map(String).join(".") || "form", i.message);
  return errors;
}

const lines = (text: string) =>
  text
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);

function numberField(errors: FieldErrors, path: string, label: string, raw: string): number | undefined {
  const v = raw.trim();
  if (!v) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) {
    addError(errors, path, `${label} must be a whole number`);
    return undefined;
  }
  return n;
}

/** A figure that may have decimals (dollars); the schema checks its range and precision. */
function decimalField(errors: FieldErrors, path: string, label: string, raw: string): number | undefined {
  const v = raw.trim();
  if (!v) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) {
    addError(errors, path, `${label} must be a number`);
    return undefined;
  }
  return n;
}

/** Worker input: the JSON object, with `script` set from its own box when that is filled in. */
function workerInput(errors: FieldErrors, form: SpecForm): Record<string, unknown> | undefined {
  let input: unknown = {};
  if (form.inputJson.trim()) {
    try {
      input = JSON.parse(form.inputJson);
    } catch (err) {
      addError(errors, "input", `Worker input is not valid JSON: ${(err as Error).message}`);
      return undefined;
    }
  }
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    addError(errors, "input", "Worker input must be a JSON object, like {}");
    return undefined;
  }
  const obj = input as Record<string, unknown>;
  if (form.script.trim()) {
    if ("script" in obj) {
      addError(errors, "script", "The JSON input already has a script; fill in only one of the two");
      return undefined;
    }
    return { ...obj, script: form.script };
  }
  return obj;
}

/** The form as the API's input, checked with the same schema the server uses. */
export function toSpec(
  form: SpecForm,
): { ok: true; spec: z.output<typeof taskSpecSchema> } | { ok: false; errors: FieldErrors } {
  const errors: FieldErrors = {};
  const input = workerInput(errors, form);
  const maxFiles = numberField(errors, "budget.maxFiles", "Max files", form.maxFiles);
  const maxLinesChanged = numberField(errors, "budget.maxLinesChanged", "Max lines changed", form.maxLinesChanged);
  const maxDurationSec = numberField(errors, "budget.maxDurationSec", "Max duration", form.maxDurationSec);
  const maxCostUsd = decimalField(errors, "budget.maxCostUsd", "Max cost", form.maxCostUsd);

  const noScript = input && missingScript({ capability: form.capability.trim(), input });
  if (noScript) addError(errors, "script", `${noScript} (or name another capability)`);

  const candidate: TaskSpecInput = {
    title: form.title,
    description: form.description,
    priority: form.priority,
    riskTier: form.riskTier,
    mode: form.mode,
    capability: form.capability,
    acceptanceCriteria: form.criteria.map((c) => ({
      text: c.text,
      ...(c.checkKind === "command" ? { check: { kind: "command" as const, command: c.command } } : {}),
      ...(c.checkKind === "pattern"
        ? {
            check: {
              kind: "pattern" as const,
              pattern: c.pattern,
              mustMatch: c.mustMatch,
              ...(c.path.trim() ? { path: c.path } : {}),
              ...(c.flags ? { flags: c.flags } : {}),
            },
          }
        : {}),
    })),
    scope: { include: lines(form.include), exclude: lines(form.exclude) },
    budget: {
      ...(maxFiles !== undefined ? { maxFiles } : {}),
      ...(maxLinesChanged !== undefined ? { maxLinesChanged } : {}),
      ...(maxDurationSec !== undefined ? { maxDurationSec } : {}),
      ...(maxCostUsd !== undefined ? { maxCostUsd } : {}),
    },
    input: input ?? {},
  };
  const parsed = taskSpecSchema.safeParse(candidate);
  if (!parsed.success) {
    for (const [path, messages] of Object.entries(errorsFromIssues(parsed.error.issues))) {
      for (const m of messages) addError(errors, path, m);
    }
  }
  if (Object.keys(errors).length || !parsed.success) return { ok: false, errors };
  return { ok: true, spec: parsed.data };
}

/** Errors for this field and everything beneath it (a glob list's lines, a criterion's check). */
export function errorsUnder(errors: FieldErrors, path: string): string[] {
  const out: string[] = [];
  for (const [p, messages] of Object.entries(errors)) {
    if (p === path) out.push(...messages);
    else if (p.startsWith(`${path}.`)) {
      const rest = p.slice(path.length + 1);
      // scope.include.3 → "Line 4: …"; deeper paths are named by the caller's own fields.
      const line = /^\d+$/.test(rest) ? `Line ${Number(rest) + 1}: ` : "";
      out.push(...messages.map((m) => `${line}${m}`));
    }
  }
  return out;
}

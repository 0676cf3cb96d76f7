import picomatch from "picomatch";
import { compileCheckPattern } from "../../shared/check-pattern.js";
import type { AcceptanceCriterion } from "../../shared/task-spec.js";
import type { CriterionOutcome, JudgeReport } from "../../shared/verdict.js";
import type { Artifact, CheckResult, Finding } from "../../shared/worker-protocol.js";
import { parseUnifiedDiff } from "./diff.js";
import { clip, normalizePath, plural } from "./findings.js";

export const ACCEPTANCE_JUDGE = "acceptance";

/** Output kept from a failed command check: its end, where the error usually is. */
const OUTPUT_TAIL = 2_000;
const MAX_LOCATIONS = 10;

interface Outcome {
  status: CriterionOutcome["status"];
  detail?: string;
  path?: string;
  line?: number;
}

function commandOutcome(index: number, checks: CheckResult[]): Outcome {
  const check = checks.find((c) => c.criterion === index);
  if (!check) return { status: "failed", detail: "The worker did not run the check." };
  const exit = check.exitCode === undefined ? "" : ` (exit code ${check.exitCode ?? "none"})`;
  if (check.passed) return { status: "passed", detail: `The check passed${exit}.` };
  const output = check.output?.trim();
  const tail = output ? `: ${output.length > OUTPUT_TAIL ? `…${output.slice(-OUTPUT_TAIL)}` : output}` : ".";
  return { status: "failed", detail: `The check failed${exit}${tail}` };
}

/** The text of an artifact as the attempt leaves it: its content, or failing that its diff's added lines. */
function textOf(artifact: Artifact): { text: string; lineOf: (i: number) => number } | null {
  if (artifact.operation === "delete") return null;
  if (artifact.content !== undefined) return { text: artifact.content, lineOf: (i) => i + 1 };
  if (!artifact.diff) return null;
  const added = parseUnifiedDiff(artifact.diff).added;
  return { text: added.map((l) => l.text).join("\n"), lineOf: (i) => added[i]?.line ?? i + 1 };
}

function patternOutcome(
  check: { pattern: string; flags?: string; mustMatch: boolean; path?: string },
  artifacts: Artifact[],
): Outcome {
  const shown = `/${check.pattern}/${check.flags ?? ""}`;
  // Specs are refused at create when their pattern does not compile; one stored before that rule gets here.
  const compiled = compileCheckPattern(check.pattern, check.flags);
  if (!compiled.ok) {
    return {
      status: "failed",
      detail: `The pattern ${shown} cannot run: ${compiled.message}; fix the task's acceptance criterion.`,
    };
  }
  const { regex } = compiled;
  const inPath = check.path ? picomatch(check.path, { dot: true }) : () => true;
  const where = check.path ? ` in files matching ${check.path}` : "";
  const candidates = artifacts.filter((a) => inPath(normalizePath(a.path)));
  const matches: Array<{ path: string; line: number }> = [];
  for (const artifact of candidates) {
    const source = textOf(artifact);
    if (!source) continue;
    const path = normalizePath(artifact.path);
    const lines = source.text.split("\n");
    let lineMatched = false;
    lines.forEach((line, i) => {
      if (!regex.test(line)) return;
      lineMatched = true;
      matches.push({ path, line: source.lineOf(i) });
    });
    // A pattern may span lines: count it once for the file if no single line matched.
    if (!lineMatched && regex.test(source.text)) matches.push({ path, line: source.lineOf(0) });
  }
  const list = matches
    .slice(0, MAX_LOCATIONS)
    .map((m) => `${m.path}:${m.line}`)
    .join(", ");
  const more = matches.length > MAX_LOCATIONS ? ` and ${matches.length - MAX_LOCATIONS} more` : "";
  if (check.mustMatch) {
    if (matches.length) return { status: "passed", detail: `${shown} found at ${list}${more}.` };
    const none = candidates.length ? "" : ` (no artifact${where ? " matches that path" : ""})`;
    return { status: "failed", detail: `${shown} was not found in any artifact${where}${none}.` };
  }
  if (!matches.length) return { status: "passed", detail: `${shown} appears in no artifact${where}.` };
  const first = matches[0];
  return {
    status: "failed",
    detail: `${shown} must not appear${where}, but it does at ${list}${more}.`,
    ...(first ? { path: first.path, line: first.line } : {}),
  };
}

export interface AcceptanceJudgement {
  report: JudgeReport;
  criteria: CriterionOutcome[];
}

/**
 * Every acceptance criterion with an automated check. Command checks run in the worker's
 * workspace, so their outcome comes from the worker's report; a command the worker did not report
 * counts as failed, or a worker could pass by staying silent. Pattern checks run here, on the
 * artifacts. A criterion without a check is reported as not checked, and does not fail the attempt.
 */
export function acceptanceJudge(
  criteria: AcceptanceCriterion[],
  artifacts: Artifact[],
  checks: CheckResult[] = [],
): AcceptanceJudgement {
  const outcomes = criteria.map((c, index): CriterionOutcome & Pick<Outcome, "path" | "line"> => {
    const o: Outcome = !c.check
      ? { status: "not_checked" }
      : c.check.kind === "command"
        ? commandOutcome(index, checks)
        : patternOutcome(c.check, artifacts);
    return { index, text: c.text, ...o, ...(o.detail ? { detail: clip(o.detail, 20_000) } : {}) };
  });
  const findings: Finding[] = outcomes
    .filter((o) => o.status === "failed")
    .map((o) => ({
      judge: ACCEPTANCE_JUDGE,
      severity: "error",
      message: clip(`Criterion ${o.index + 1} "${o.text}" failed: ${o.detail ?? "no detail"}`, 4_000),
      ...(o.path ? { path: clip(o.path, 1_000) } : {}),
      ...(o.line ? { line: o.line } : {}),
      pattern: `criterion-${o.index + 1}`,
    }));
  const count = (s: CriterionOutcome["status"]) => outcomes.filter((o) => o.status === s).length;
  const passed = count("passed");
  const failed = count("failed");
  const notChecked = count("not_checked");
  const rationale = criteria.length
    ? `${passed} of ${plural(criteria.length, "acceptance criterion", "acceptance criteria")} passed, ${failed} failed, ${notChecked} not checked.`
    : "The task has no acceptance criteria.";
  return {
    report: { judge: ACCEPTANCE_JUDGE, passed: failed === 0, hardFail: false, findings, rationale },
    criteria: outcomes.map(({ path: _p, line: _l, ...o }) => o),
  };
}

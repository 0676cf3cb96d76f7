import picomatch from "picomatch";
import type { TaskSpec } from "../../shared/task-spec.js";
import { formatUsd } from "../../shared/usage.js";
import type { JudgeReport } from "../../shared/verdict.js";
import type { Artifact, ExecuteResult, Finding } from "../../shared/worker-protocol.js";
import { countLines, parseUnifiedDiff } from "./diff.js";
import { capFindings, clip, normalizePath, plural } from "./findings.js";

export const BUDGET_SCOPE_JUDGE = "budget-scope";

export interface ArtifactSize {
  path: string;
  added: number;
  removed: number;
  /** false when the size could not be measured (a diff with no hunks and no content). */
  measured: boolean;
}

/**
 * Lines an artifact changes. A diff gives added and removed lines. Without one, create counts its
 * content as added and delete as removed; a modify without a diff counts its whole content, since
 * the worker did not say which part changed, so the budget is charged for a rewrite.
 */
export function measureArtifact(artifact: Artifact): ArtifactSize {
  const path = normalizePath(artifact.path);
  if (artifact.diff) {
    const diff = parseUnifiedDiff(artifact.diff);
    if (diff.hunks > 0) return { path, added: diff.added.length, removed: diff.removed, measured: true };
  }
  if (artifact.content === undefined) {
    // A delete may come without content: removing a file we cannot see costs no counted lines.
    return { path, added: 0, removed: 0, measured: artifact.operation === "delete" && !artifact.diff };
  }
  const lines = countLines(artifact.content);
  return artifact.operation === "delete"
    ? { path, added: 0, removed: lines, measured: true }
    : { path, added: lines, removed: 0, measured: true };
}

/**
 * Globs as picomatch reads them, plus one convenience: a plain path without glob characters
 * ("src", "docs/") also covers everything under it, since that is what an operator means by it.
 */
function scopeMatcher(globs: string[]): (path: string) => boolean {
  const expanded = globs.flatMap((g) => {
    const plain = normalizePath(g).replace(/\/+$/, "");
    return picomatch.scan(g).isGlob ? [g] : [plain, `${plain}/**`];
  });
  return picomatch(expanded, { dot: true });
}

/** Why a path must not be written at all, whatever the globs say. */
function escapesWorkspace(path: string): boolean {
  return path.startsWith("/") || /^[A-Za-z]:/.test(path) || path.split("/").includes("..");
}

/**
 * Files, changed lines and the reported cost within the spec's budget, every path inside the scope.
 *
 * Both kinds of failure are hard fails that ask for changes rather than reject: the worker can
 * fix them on the next attempt (split the change, revert the file it should not have touched),
 * and the critique names each offending path. A reject would end the request-changes loop for a
 * result that may be right apart from one stray file.
 */
export function budgetScopeJudge(
  spec: Pick<TaskSpec, "budget" | "scope">,
  artifacts: Artifact[],
  usage?: ExecuteResult["usage"],
): JudgeReport {
  const findings: Finding[] = [];
  const error = (message: string, path?: string): Finding => ({
    judge: BUDGET_SCOPE_JUDGE,
    severity: "error",
    message: clip(message, 4_000),
    ...(path === undefined ? {} : { path: clip(path, 1_000) }),
  });

  const sizes = artifacts.map(measureArtifact);
  const files = new Set(sizes.map((s) => s.path)).size;
  const lines = sizes.reduce((n, s) => n + s.added + s.removed, 0);
  const { maxFiles, maxLinesChanged, maxCostUsd } = spec.budget;
  const cost = usage?.costUsd;

  for (const s of sizes.filter((x) => !x.measured)) {
    findings.push({
      ...error(`${s.path}: no content and no readable unified diff, so the change cannot be measured.`, s.path),
      pattern: "unmeasured",
    });
  }
  const overFiles = maxFiles !== undefined && files > maxFiles;
  if (overFiles) {
    findings.push({
      ...error(`${plural(files, "file")} changed; the budget allows ${maxFiles}.`),
      pattern: "max-files",
    });
  }
  const overLines = maxLinesChanged !== undefined && lines > maxLinesChanged;
  if (overLines) {
    const largest = [...sizes]
      .sort((a, b) => b.added + b.removed - (a.added + a.removed))
      .slice(0, 3)
      .map((s) => `${s.path} (${s.added + s.removed})`)
      .join(", ");
    findings.push({
      ...error(`${plural(lines, "line")} changed; the budget allows ${maxLinesChanged}. Largest: ${largest}.`),
      pattern: "max-lines",
    });
  }
  // The worker's own report: a result that reports no cost cannot be held to the cost budget.
  const overCost = maxCostUsd !== undefined && cost !== undefined && cost > maxCostUsd;
  if (overCost) {
    const model = usage?.model ? ` (${usage.model})` : "";
    findings.push({
      ...error(
        `The attempt cost ${formatUsd(cost)}${model} by the worker's report; the budget allows ${formatUsd(maxCostUsd)}.`,
      ),
      pattern: "max-cost",
    });
  }

  const include = spec.scope.include.length ? scopeMatcher(spec.scope.include) : null;
  const exclude = spec.scope.exclude.length ? scopeMatcher(spec.scope.exclude) : null;
  let outOfScope = 0;
  for (const path of new Set(sizes.map((s) => s.path))) {
    let why: string | null = null;
    if (escapesWorkspace(path)) why = "points outside the workspace";
    else if (include && !include(path)) why = `is outside the include globs (${spec.scope.include.join(", ")})`;
    else if (exclude?.(path)) why = `matches an exclude glob (${spec.scope.exclude.join(", ")})`;
    if (why) {
      outOfScope++;
      findings.push({ ...error(`${path} ${why}.`, path), pattern: "scope" });
    }
  }

  const passed = findings.length === 0;
  const budget = [
    maxFiles === undefined ? null : plural(maxFiles, "file"),
    maxLinesChanged === undefined ? null : plural(maxLinesChanged, "line"),
    maxCostUsd === undefined ? null : formatUsd(maxCostUsd),
  ].filter(Boolean);
  const costText = cost === undefined ? "" : ` at ${formatUsd(cost)}`;
  const sizeText = `${plural(files, "file")} and ${plural(lines, "changed line")}${costText}`;
  const budgetText = budget.length
    ? `${overFiles || overLines || overCost ? "over" : "within"} the budget of ${budget.join(" and ")}`
    : "no budget set";
  const scopeText = outOfScope ? `${plural(outOfScope, "path")} out of scope` : "all paths in scope";
  return {
    judge: BUDGET_SCOPE_JUDGE,
    passed,
    hardFail: !passed,
    findings: capFindings(BUDGET_SCOPE_JUDGE, findings),
    rationale: `${sizeText}, ${budgetText}; ${scopeText}.`,
  };
}

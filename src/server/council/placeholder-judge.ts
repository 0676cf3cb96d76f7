import type { JudgeReport } from "../../shared/verdict.js";
import type { Artifact, Finding } from "../../shared/worker-protocol.js";
import { parseUnifiedDiff } from "./diff.js";
import { capFindings, clip, normalizePath, plural } from "./findings.js";
import { PLACEHOLDER_PATTERNS, type PlaceholderFinding, scanForPlaceholders } from "./placeholders.js";

export const PLACEHOLDER_JUDGE = "placeholder";

const describePattern = new Map(PLACEHOLDER_PATTERNS.map((p) => [p.id, p.description]));

/**
 * The lines of an artifact the worker wrote. With a diff, only its added lines count: markers that
 * were in the file before the attempt are not the worker's doing.
 */
function scanArtifact(artifact: Artifact): PlaceholderFinding[] {
  const path = normalizePath(artifact.path);
  if (artifact.operation === "delete") return [];
  if (artifact.diff) {
    const diff = parseUnifiedDiff(artifact.diff);
    if (diff.hunks > 0) {
      return diff.added.flatMap(({ line, text }) => scanForPlaceholders(path, text).map((f) => ({ ...f, line })));
    }
  }
  return artifact.content === undefined ? [] : scanForPlaceholders(path, artifact.content);
}

/** Any placeholder in what the worker wrote is a hard fail: unfinished work is never accepted. */
export function placeholderJudge(artifacts: Artifact[]): JudgeReport {
  const hits = artifacts.flatMap(scanArtifact);
  const findings: Finding[] = hits.map((h) => ({
    judge: PLACEHOLDER_JUDGE,
    severity: "error",
    message: clip(`${describePattern.get(h.pattern) ?? h.pattern} at ${h.path}:${h.line}`, 4_000),
    path: clip(h.path, 1_000),
    line: h.line,
    pattern: h.pattern,
    snippet: clip(h.snippet, 1_000),
  }));
  const scanned = artifacts.filter((a) => a.operation !== "delete").length;
  const files = new Set(hits.map((h) => h.path)).size;
  const passed = hits.length === 0;
  return {
    judge: PLACEHOLDER_JUDGE,
    passed,
    hardFail: !passed,
    findings: capFindings(PLACEHOLDER_JUDGE, findings),
    rationale: passed
      ? `No placeholders in ${plural(scanned, "artifact")}.`
      : `${plural(hits.length, "placeholder")} in ${files} of ${plural(scanned, "artifact")}.`,
  };
}

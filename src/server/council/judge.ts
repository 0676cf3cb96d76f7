import type { TaskSpec } from "../../shared/task-spec.js";
import type { Judgement, JudgeReport, Verdict } from "../../shared/verdict.js";
import type { ExecuteResult } from "../../shared/worker-protocol.js";
import { acceptanceJudge } from "./acceptance-judge.js";
import { budgetScopeJudge } from "./budget-scope-judge.js";
import { clip, plural } from "./findings.js";
import { placeholderJudge } from "./placeholder-judge.js";

export interface AttemptToJudge {
  spec: TaskSpec;
  result: ExecuteResult;
}

/** Modes whose whole point is a change to files: finishing one with no artifact delivers nothing. */
const CHANGE_MODES: ReadonlySet<TaskSpec["mode"]> = new Set(["feature", "fix", "refactor"]);

/**
 * Runs every judge on a completed attempt and decides:
 * - `reject` when the result is unusable: a feature, fix or refactor that came back with no
 *   artifact at all and without a single acceptance criterion passing. There is nothing to
 *   review and nothing to critique line by line, so asking for changes would only repeat the
 *   attempt. A chore may legitimately change no file, and a passing criterion shows the work
 *   was done (for instance the fix was already in place), so neither is rejected.
 * - `changes_requested` when any judge did not pass: a placeholder, the budget or the scope (hard
 *   fails), or a failed acceptance criterion.
 * - `accept` otherwise.
 *
 * A `failed` worker result is not judged: the dispatcher records the failure and retries.
 *
 * Synchronous and possibly long (diffs, patterns and placeholders over every artifact): the server
 * calls it on a judging thread through `judgeAttempt`, never on its event loop.
 */
export function judgeInThread({ spec, result }: AttemptToJudge): Judgement {
  if (result.status !== "completed") {
    throw new Error("judgeAttempt needs a completed result; a failed attempt is the dispatcher's to record.");
  }
  const placeholders = placeholderJudge(result.artifacts);
  const budgetScope = budgetScopeJudge(spec, result.artifacts, result.usage);
  const acceptance = acceptanceJudge(spec.acceptanceCriteria, result.artifacts, result.checks);
  const judges: JudgeReport[] = [placeholders, budgetScope, acceptance.report];

  const anyCriterionPassed = acceptance.criteria.some((c) => c.status === "passed");
  const unusable = result.artifacts.length === 0 && CHANGE_MODES.has(spec.mode) && !anyCriterionPassed;
  const failing = judges.filter((j) => !j.passed);
  const verdict: Verdict = unusable ? "reject" : failing.length ? "changes_requested" : "accept";

  const lead =
    verdict === "reject"
      ? `Rejected: the ${spec.mode} task came back with no artifacts and no acceptance criterion passed.`
      : verdict === "changes_requested"
        ? `Changes requested: ${plural(failing.length, "judge")} of ${judges.length} failed (${failing.map((j) => j.judge).join(", ")}), ${plural(countErrors(failing), "finding")}.`
        : `Accepted: all ${judges.length} judges passed.`;
  const rationale = clip([lead, ...judges.map((j) => `${j.judge}: ${j.rationale}`)].join(" "), 10_000);
  return { verdict, rationale, judges, criteria: acceptance.criteria };
}

function countErrors(judges: JudgeReport[]): number {
  return judges.reduce((n, j) => n + j.findings.filter((f) => f.severity === "error").length, 0);
}

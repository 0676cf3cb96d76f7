import type { Judgement, JudgeReport } from "../../shared/verdict.js";
import type { Critique, Finding } from "../../shared/worker-protocol.js";
import type { Logger } from "../logger.js";
import { clip, plural } from "./findings.js";
import { type AttemptToJudge, judgeInThread } from "./judge.js";
import { JudgePool, JudgeTimeoutError } from "./judge-pool.js";

export { type AttemptToJudge, judgeInThread };

export const COUNCIL_JUDGE = "council";

export interface CouncilSettings {
  /** Judging threads at most. */
  threads: number;
  /** Longest one attempt may take to judge; past it the verdict says so instead of waiting. */
  timeoutMs: number;
  log?: Logger;
}

let settings: CouncilSettings = { threads: 2, timeoutMs: 60_000 };
let pool: JudgePool | null = null;

/** Applies the server's configuration (COUNCIL_THREADS, COUNCIL_TIMEOUT_MS); a changed pool size or limit takes a new pool. */
export function configureCouncil(next: CouncilSettings): void {
  const changed = next.threads !== settings.threads || next.timeoutMs !== settings.timeoutMs;
  settings = next;
  if (changed && pool) {
    // Judgements already on the old pool finish there; its threads end once it is idle.
    void pool.close();
    pool = null;
  }
}

/**
 * Judges a completed attempt (see `judgeInThread` for the rules) on a judging thread, so that no
 * artifact set or acceptance pattern can hold up the server's event loop. A judgement that runs past
 * the time limit is stopped and becomes a `changes_requested` verdict whose finding says why; any
 * other failure of the thread rejects, like a failure of the judges themselves.
 */
export async function judgeAttempt(attempt: AttemptToJudge): Promise<Judgement> {
  if (attempt.result.status !== "completed") {
    throw new Error("judgeAttempt needs a completed result; a failed attempt is the dispatcher's to record.");
  }
  pool ??= new JudgePool({ size: settings.threads, timeoutMs: settings.timeoutMs });
  try {
    return await pool.judge(attempt);
  } catch (err) {
    if (!(err instanceof JudgeTimeoutError)) throw err;
    settings.log?.warn(
      { limitMs: err.limitMs, artifacts: attempt.result.artifacts.length, bytes: artifactBytes(attempt) },
      "the council stopped judging an attempt at its time limit",
    );
    return stoppedJudgement(attempt, err.limitMs);
  }
}

function artifactBytes({ result }: AttemptToJudge): number {
  return result.artifacts.reduce((n, a) => n + (a.content?.length ?? 0) + (a.diff?.length ?? 0), 0);
}

/** The verdict on an attempt the council could not finish judging: changes requested, with the reason as a finding. */
export function stoppedJudgement(attempt: AttemptToJudge, limitMs: number): Judgement {
  const { spec, result } = attempt;
  const seconds = Math.round(limitMs / 100) / 10;
  const size = `${plural(result.artifacts.length, "artifact")} (${(artifactBytes(attempt) / (1024 * 1024)).toFixed(1)} MiB of text)`;
  const finding: Finding = {
    judge: COUNCIL_JUDGE,
    severity: "error",
    pattern: "time-limit",
    message: `The council stopped judging after ${seconds} s (COUNCIL_TIMEOUT_MS): checking ${size} against the placeholder scan, the budget, the scope and the acceptance patterns took longer. Deliver a smaller change; an operator may simplify the task's acceptance patterns.`,
  };
  const report: JudgeReport = {
    judge: COUNCIL_JUDGE,
    passed: false,
    hardFail: true,
    findings: [finding],
    rationale: `Judging ${size} did not finish within ${seconds} s.`,
  };
  return {
    verdict: "changes_requested",
    rationale: clip(
      `Changes requested: the council could not finish judging this attempt within ${seconds} s. ${COUNCIL_JUDGE}: ${report.rationale}`,
      10_000,
    ),
    judges: [report],
    criteria: spec.acceptanceCriteria.map((c, index) => ({
      index,
      text: c.text,
      status: "not_checked" as const,
      ...(c.check ? { detail: "Not checked: the council stopped at its time limit before this criterion." } : {}),
    })),
  };
}

/** Critique schema bound on findings. */
const MAX_CRITIQUE_FINDINGS = 500;

/**
 * What the next attempt is told: the verdict, its rationale and every failing finding of every
 * judge. Over the protocol's bound, the last slot says how many findings were left out.
 */
export function critiqueFrom(attemptNumber: number, judgement: Judgement): Critique {
  if (judgement.verdict === "accept") {
    throw new Error(`Attempt ${attemptNumber} was accepted; an accepted attempt has no critique.`);
  }
  const failing: Finding[] = judgement.judges.flatMap((j) => j.findings.filter((f) => f.severity === "error"));
  const findings =
    failing.length <= MAX_CRITIQUE_FINDINGS
      ? failing
      : [
          ...failing.slice(0, MAX_CRITIQUE_FINDINGS - 1),
          {
            judge: "council",
            severity: "error" as const,
            message: `${failing.length - (MAX_CRITIQUE_FINDINGS - 1)} more findings are not listed; fix the ones above and look for more of the same.`,
          },
        ];
  return {
    fromAttempt: attemptNumber,
    verdict: judgement.verdict,
    rationale: clip(judgement.rationale, 10_000),
    findings,
  };
}

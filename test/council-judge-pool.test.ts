import { afterEach, describe, expect, it } from "vitest";
import { configureCouncil, judgeAttempt } from "../src/server/council/council.js";
import { type AttemptToJudge, judgeInThread } from "../src/server/council/judge.js";
import { JudgePool, JudgeTimeoutError } from "../src/server/council/judge-pool.js";
import { type TaskSpecInput, taskSpecSchema } from "../src/shared/task-spec.js";
import { judgementSchema } from "../src/shared/verdict.js";
import type { Artifact, ExecuteResult } from "../src/shared/worker-protocol.js";

const attempt = (spec: Partial<TaskSpecInput>, result: Partial<ExecuteResult> = {}): AttemptToJudge => ({
  spec: taskSpecSchema.parse({ title: "Pool", ...spec }),
  result: { status: "completed", summary: "done", artifacts: [], ...result },
});

/**
 * Valid RE2 and linear, yet slow: a thousand-fold repeat of a Unicode class keeps RE2 on its NFA with a
 * thousand states, some 70 µs per character here, so these 400,000 characters take the thread ~30 s.
 */
function slowAttempt(): AttemptToJudge {
  const line = "ab".repeat(5_000);
  const content = Array.from({ length: 40 }, () => line).join("\n");
  return attempt(
    { acceptanceCriteria: [{ text: "a long word", check: { kind: "pattern", pattern: "\\pL{1000}\\pN" } }] },
    { artifacts: [{ path: "words.txt", operation: "create", content }] },
  );
}

const diff = (lines: string[]) => ["--- a/x", "+++ b/x", `@@ -1,2 +1,${lines.length} @@`, ...lines].join("\n");

/** Attempts that between them reach every judge and most of their branches. */
const CORPUS: AttemptToJudge[] = [
  attempt({}, { artifacts: [{ path: "src/a.ts", operation: "create", content: "export const a = 1;\n" }] }),
  attempt({ mode: "fix" }, { artifacts: [] }),
  attempt({ mode: "chore" }, { artifacts: [] }),
  attempt(
    { acceptanceCriteria: [{ text: "tests", check: { kind: "command", command: "npm test" } }] },
    {
      artifacts: [{ path: "a.py", operation: "create", content: "def f():\n    raise NotImplementedError\n" }],
      checks: [{ criterion: 0, passed: false, exitCode: 1, output: "1 failed" }],
    },
  ),
  attempt(
    { budget: { maxFiles: 1, maxLinesChanged: 2 }, scope: { include: ["src"], exclude: ["src/gen/**"] } },
    {
      artifacts: [
        { path: "src/a.ts", operation: "modify", diff: diff([" a", "-b", "+c", "+d", "+e"]) },
        { path: "src/gen/x.ts", operation: "create", content: "x\n" },
        { path: "../escape.ts", operation: "create", content: "y\n" },
        { path: "docs/old.md", operation: "delete" },
        { path: "odd.txt", operation: "modify", diff: "not a diff" },
      ],
    },
  ),
  attempt(
    {
      acceptanceCriteria: [
        { text: "exports", check: { kind: "pattern", pattern: "^export function \\w+", path: "src/**" } },
        { text: "no eval", check: { kind: "pattern", pattern: "eval\\(", mustMatch: false } },
        { text: "case", check: { kind: "pattern", pattern: "HELLO", flags: "i" } },
        { text: "spans", check: { kind: "pattern", pattern: "one\\ntwo" } },
        { text: "readable" },
      ],
    },
    {
      artifacts: [
        { path: "src/x.ts", operation: "create", content: "export function hello() {\n  return eval('1');\n}\n" },
        { path: "notes.txt", operation: "create", content: "one\ntwo\n// TODO: more\n" },
        { path: "src/y.ts", operation: "modify", diff: diff([" keep", "+export function added() {}", "+// FIXME: x"]) },
      ],
    },
  ),
  attempt(
    {},
    {
      artifacts: Array.from({ length: 30 }, (_, i) => ({
        path: `f${i}.sh`,
        operation: "create",
        content: Array.from({ length: 50 }, (_, n) => `# TODO: step ${n}`).join("\n"),
      })) satisfies Artifact[],
    },
  ),
  attempt(
    {},
    {
      artifacts: [
        { path: "u.txt", operation: "create", content: "" },
        { path: "v.txt", operation: "create", content: "é😀\u2028\r\n" },
      ],
    },
  ),
];

describe("the judge pool", () => {
  let pool: JudgePool | null = null;
  afterEach(async () => {
    await pool?.close();
    pool = null;
  });

  it("gives the same judgements as judging in-thread, for every attempt of the corpus at once", async () => {
    pool = new JudgePool({ size: 2, timeoutMs: 30_000 });
    const p = pool;
    const judged = await Promise.all(CORPUS.map((a) => p.judge(a)));
    const expected = CORPUS.map((a) => judgeInThread(a));
    expect(judged).toEqual(expected);
    for (const j of judged) expect(judgementSchema.safeParse(j).success).toBe(true);
    expect(new Set(judged.map((j) => j.verdict))).toEqual(new Set(["accept", "reject", "changes_requested"]));
    // Bounded: never more threads than asked for, however many jobs were queued.
    expect(p.threads).toBeLessThanOrEqual(2);
  });

  it("terminates a job that runs past the time limit, and the next job runs on a fresh thread", async () => {
    pool = new JudgePool({ size: 1, timeoutMs: 500 });
    const slow = pool.judge(slowAttempt());
    const queued = pool.judge(CORPUS[0] as AttemptToJudge);
    await expect(slow).rejects.toBeInstanceOf(JudgeTimeoutError);
    await expect(slow).rejects.toThrow("Judging took longer than 500 ms and was stopped.");
    // The job queued behind it was not lost with the thread.
    expect(await queued).toEqual(judgeInThread(CORPUS[0] as AttemptToJudge));
    expect(pool.threads).toBe(1);
    expect(await pool.judge(CORPUS[5] as AttemptToJudge)).toEqual(judgeInThread(CORPUS[5] as AttemptToJudge));
  });

  it("passes a judge's error back and keeps the thread", async () => {
    pool = new JudgePool({ size: 1, timeoutMs: 30_000 });
    const failed = attempt({}, { status: "failed" });
    await expect(pool.judge(failed)).rejects.toThrow(/needs a completed result/);
    expect(await pool.judge(CORPUS[1] as AttemptToJudge)).toEqual(judgeInThread(CORPUS[1] as AttemptToJudge));
    expect(pool.threads).toBe(1);
  });

  it("finishes what it has when closed, then ends its threads and takes no more jobs", async () => {
    pool = new JudgePool({ size: 1, timeoutMs: 30_000 });
    const running = pool.judge(CORPUS[3] as AttemptToJudge);
    await pool.close();
    expect(await running).toEqual(judgeInThread(CORPUS[3] as AttemptToJudge));
    expect(pool.threads).toBe(0);
    await expect(pool.judge(CORPUS[0] as AttemptToJudge)).rejects.toThrow(/closed/);
  });
});

describe("the council at its time limit", () => {
  afterEach(() => configureCouncil({ threads: 2, timeoutMs: 60_000 }));

  it("stops judging and requests changes with a finding that says why", async () => {
    configureCouncil({ threads: 1, timeoutMs: 500 });
    const slow = slowAttempt();
    const j = await judgeAttempt(slow);
    expect(judgementSchema.safeParse(j).success).toBe(true);
    expect(j.verdict).toBe("changes_requested");
    expect(j.judges).toHaveLength(1);
    expect(j.judges[0]).toMatchObject({ judge: "council", passed: false, hardFail: true });
    expect(j.judges[0]?.findings[0]?.pattern).toBe("time-limit");
    expect(j.judges[0]?.findings[0]?.message).toMatch(
      /^The council stopped judging after 0\.5 s \(COUNCIL_TIMEOUT_MS\): checking 1 artifact \(0\.4 MiB of text\)/,
    );
    expect(j.criteria).toEqual([
      {
        index: 0,
        text: "a long word",
        status: "not_checked",
        detail: "Not checked: the council stopped at its time limit before this criterion.",
      },
    ]);
    // The council carries on with the next attempt.
    expect((await judgeAttempt(CORPUS[0] as AttemptToJudge)).verdict).toBe("accept");
  });
});

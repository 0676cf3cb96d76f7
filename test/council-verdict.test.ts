import { describe, expect, it } from "vitest";
import { critiqueFrom, judgeAttempt } from "../src/server/council/council.js";
import { type TaskSpecInput, taskSpecSchema } from "../src/shared/task-spec.js";
import { judgementSchema } from "../src/shared/verdict.js";
import { critiqueSchema, type ExecuteResult } from "../src/shared/worker-protocol.js";

const spec = (s: Partial<TaskSpecInput> = {}) => taskSpecSchema.parse({ title: "Add sum", ...s });
const completed = (r: Partial<ExecuteResult> = {}): ExecuteResult => ({
  status: "completed",
  summary: "done",
  artifacts: [{ path: "src/sum.ts", operation: "create", content: "export const sum = (a, b) => a + b;\n" }],
  ...r,
});
const TESTS = { text: "tests pass", check: { kind: "command" as const, command: "npm test" } };

describe("council verdicts", () => {
  it("accepts when every judge passes", async () => {
    const j = await judgeAttempt({
      spec: spec({ acceptanceCriteria: [TESTS, { text: "is clear" }], budget: { maxFiles: 1 } }),
      result: completed({ checks: [{ criterion: 0, passed: true, exitCode: 0 }] }),
    });
    expect(j.verdict).toBe("accept");
    expect(j.judges.map((r) => [r.judge, r.passed])).toEqual([
      ["placeholder", true],
      ["budget-scope", true],
      ["acceptance", true],
    ]);
    expect(j.criteria.map((c) => c.status)).toEqual(["passed", "not_checked"]);
    expect(j.rationale).toBe(
      "Accepted: all 3 judges passed. placeholder: No placeholders in 1 artifact. " +
        "budget-scope: 1 file and 1 changed line, within the budget of 1 file; all paths in scope. " +
        "acceptance: 1 of 2 acceptance criteria passed, 0 failed, 1 not checked.",
    );
    expect(judgementSchema.safeParse(j).success).toBe(true);
  });

  it("requests changes on a placeholder even when every criterion passes", async () => {
    const j = await judgeAttempt({
      spec: spec({ acceptanceCriteria: [TESTS] }),
      result: completed({
        artifacts: [{ path: "a.py", operation: "create", content: "def f():\n    raise NotImplementedError\n" }],
        checks: [{ criterion: 0, passed: true }],
      }),
    });
    expect(j.verdict).toBe("changes_requested");
    expect(j.judges[0]).toMatchObject({ judge: "placeholder", passed: false, hardFail: true });
    expect(j.rationale.startsWith("Changes requested: 1 judge of 3 failed (placeholder), 1 finding.")).toBe(true);
  });

  it("requests changes when over budget or out of scope", async () => {
    const over = await judgeAttempt({
      spec: spec({ budget: { maxLinesChanged: 1 } }),
      result: completed({
        artifacts: [{ path: "a.ts", operation: "create", content: "a\nb\n" }],
      }),
    });
    expect(over.verdict).toBe("changes_requested");
    const outside = await judgeAttempt({
      spec: spec({ scope: { include: ["src/**"] } }),
      result: completed({
        artifacts: [{ path: "package.json", operation: "modify", content: "{}\n" }],
      }),
    });
    expect(outside.verdict).toBe("changes_requested");
    expect(outside.judges[1]?.findings[0]?.path).toBe("package.json");
  });

  it("requests changes when a criterion fails, including a check the worker did not run", async () => {
    const j = await judgeAttempt({ spec: spec({ acceptanceCriteria: [TESTS] }), result: completed() });
    expect(j.verdict).toBe("changes_requested");
    expect(j.criteria[0]).toMatchObject({ status: "failed", detail: "The worker did not run the check." });
  });

  it("rejects a feature, fix or refactor with no artifacts and no passing criterion", async () => {
    for (const mode of ["feature", "fix", "refactor"] as const) {
      const j = await judgeAttempt({ spec: spec({ mode }), result: completed({ artifacts: [] }) });
      expect(j.verdict).toBe("reject");
      expect(j.rationale.startsWith(`Rejected: the ${mode} task came back with no artifacts`)).toBe(true);
    }
  });

  it("does not reject an empty chore, nor an empty fix whose criterion passed", async () => {
    const chore = await judgeAttempt({ spec: spec({ mode: "chore" }), result: completed({ artifacts: [] }) });
    expect(chore.verdict).toBe("accept");
    const fix = await judgeAttempt({
      spec: spec({ mode: "fix", acceptanceCriteria: [TESTS] }),
      result: completed({ artifacts: [], checks: [{ criterion: 0, passed: true }] }),
    });
    expect(fix.verdict).toBe("accept");
  });

  it("refuses to judge a failed worker result", async () => {
    await expect(judgeAttempt({ spec: spec(), result: completed({ status: "failed" }) })).rejects.toThrow(
      /needs a completed result/,
    );
  });
});

describe("critique for the next attempt", () => {
  it("carries every failing finding of every judge", async () => {
    const j = await judgeAttempt({
      spec: spec({ acceptanceCriteria: [TESTS], budget: { maxFiles: 1 } }),
      result: completed({
        artifacts: [
          { path: "a.ts", operation: "create", content: "// TODO: a\n" },
          { path: "b.ts", operation: "create", content: "// FIXME: b\n" },
        ],
      }),
    });
    const critique = critiqueFrom(2, j);
    expect(critiqueSchema.safeParse(critique).success).toBe(true);
    expect(critique).toMatchObject({ fromAttempt: 2, verdict: "changes_requested", rationale: j.rationale });
    expect(critique.findings.map((f) => [f.judge, f.path ?? null, f.line ?? null])).toEqual([
      ["placeholder", "a.ts", 1],
      ["placeholder", "b.ts", 1],
      ["budget-scope", null, null],
      ["acceptance", null, null],
    ]);
  });

  it("carries a reject", async () => {
    const j = await judgeAttempt({ spec: spec(), result: completed({ artifacts: [] }) });
    expect(critiqueFrom(1, j)).toMatchObject({ fromAttempt: 1, verdict: "reject", findings: [] });
  });

  it("stays within the protocol's bound and says how many findings were left out", async () => {
    const content = Array.from({ length: 700 }, (_, i) => `# TODO: ${i}`).join("\n");
    const j = await judgeAttempt({
      spec: spec(),
      result: completed({ artifacts: [{ path: "x.sh", operation: "create", content }] }),
    });
    const critique = critiqueFrom(1, j);
    expect(critiqueSchema.safeParse(critique).success).toBe(true);
    expect(critique.findings).toHaveLength(500);
    expect(critique.findings.at(-1)?.message).toMatch(/^201 more findings are not listed/);
  });

  it("has nothing to say about an accepted attempt", async () => {
    const j = await judgeAttempt({ spec: spec(), result: completed() });
    expect(() => critiqueFrom(1, j)).toThrow(/accepted/);
  });
});

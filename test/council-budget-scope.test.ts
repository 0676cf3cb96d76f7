import { describe, expect, it } from "vitest";
import { budgetScopeJudge, measureArtifact } from "../src/server/council/budget-scope-judge.js";
import { parseUnifiedDiff } from "../src/server/council/diff.js";
import { taskSpecSchema } from "../src/shared/task-spec.js";
import type { Artifact } from "../src/shared/worker-protocol.js";

const spec = (budget: object = {}, scope: object = {}) => taskSpecSchema.parse({ title: "t", budget, scope });
const create = (path: string, lines: number): Artifact => ({
  path,
  operation: "create",
  content: `${Array.from({ length: lines }, (_, i) => `line ${i}`).join("\n")}\n`,
});

const DIFF = [
  "--- a/q.sql",
  "+++ b/q.sql",
  "@@ -1,3 +1,4 @@",
  " keep",
  "--- a removed SQL comment",
  "-removed",
  "+added 1",
  "+added 2",
  "+added 3",
  " keep",
].join("\n");

describe("measuring artifacts", () => {
  it("counts a diff's added and removed lines inside hunks only", () => {
    expect(parseUnifiedDiff(DIFF)).toMatchObject({ removed: 2, hunks: 1 });
    expect(measureArtifact({ path: "./q.sql", operation: "modify", diff: DIFF })).toEqual({
      path: "q.sql",
      added: 3,
      removed: 2,
      measured: true,
    });
  });

  it("counts content lines for create and delete without a diff", () => {
    expect(measureArtifact({ path: "a", operation: "create", content: "a\nb\nc" })).toMatchObject({ added: 3 });
    expect(measureArtifact({ path: "a", operation: "create", content: "a\nb\n" })).toMatchObject({ added: 2 });
    expect(measureArtifact({ path: "a", operation: "create", content: "" })).toMatchObject({ added: 0 });
    expect(measureArtifact({ path: "a", operation: "delete", content: "x\ny\n" })).toMatchObject({
      added: 0,
      removed: 2,
    });
    expect(measureArtifact({ path: "a", operation: "delete" })).toMatchObject({ removed: 0, measured: true });
  });

  it("cannot measure a diff without hunks and without content", () => {
    expect(measureArtifact({ path: "a", operation: "modify", diff: "garbage" }).measured).toBe(false);
  });
});

describe("budget and scope judge", () => {
  it("holds the reported cost to budget.maxCostUsd: equal passes, a millionth over fails, no report is not held", () => {
    const budget = spec({ maxCostUsd: 0.05 });
    const at = budgetScopeJudge(budget, [create("a", 1)], { costUsd: 0.05, model: "m-1" });
    expect(at).toMatchObject({ passed: true, findings: [] });
    expect(at.rationale).toBe("1 file and 1 changed line at $0.05, within the budget of $0.05; all paths in scope.");

    const over = budgetScopeJudge(budget, [create("a", 1)], { costUsd: 0.050001, model: "m-1", inputTokens: 9 });
    expect(over.passed).toBe(false);
    expect(over.hardFail).toBe(true);
    expect(over.findings).toEqual([
      {
        judge: "budget-scope",
        severity: "error",
        message: "The attempt cost $0.050001 (m-1) by the worker's report; the budget allows $0.05.",
        pattern: "max-cost",
      },
    ]);
    expect(over.rationale).toContain("over the budget of $0.05");

    expect(budgetScopeJudge(budget, [create("a", 1)], { inputTokens: 10 }).passed).toBe(true);
    expect(budgetScopeJudge(budget, [create("a", 1)]).passed).toBe(true);
  });

  it("passes exactly at the file and line limits", () => {
    const report = budgetScopeJudge(spec({ maxFiles: 2, maxLinesChanged: 10 }), [create("a.ts", 6), create("b.ts", 4)]);
    expect(report).toEqual({
      judge: "budget-scope",
      passed: true,
      hardFail: false,
      findings: [],
      rationale: "2 files and 10 changed lines, within the budget of 2 files and 10 lines; all paths in scope.",
    });
  });

  it("fails one file over the limit", () => {
    const report = budgetScopeJudge(spec({ maxFiles: 2 }), [create("a", 1), create("b", 1), create("c", 1)]);
    expect(report.passed).toBe(false);
    expect(report.hardFail).toBe(true);
    expect(report.findings).toEqual([
      {
        judge: "budget-scope",
        severity: "error",
        message: "3 files changed; the budget allows 2.",
        pattern: "max-files",
      },
    ]);
  });

  it("fails one line over the limit and names the largest files", () => {
    const report = budgetScopeJudge(spec({ maxLinesChanged: 10 }), [
      create("small.ts", 1),
      { path: "q.sql", operation: "modify", diff: DIFF },
      create("big.ts", 5),
    ]);
    expect(report.findings.map((f) => f.message)).toEqual([
      "11 lines changed; the budget allows 10. Largest: q.sql (5), big.ts (5), small.ts (1).",
    ]);
    expect(report.rationale).toBe("3 files and 11 changed lines, over the budget of 10 lines; all paths in scope.");
  });

  it("counts a path touched twice as one file", () => {
    const report = budgetScopeJudge(spec({ maxFiles: 1 }), [create("a.ts", 1), create("./a.ts", 1)]);
    expect(report.passed).toBe(true);
  });

  it("keeps paths inside the include globs and outside the exclude globs", () => {
    const s = spec({}, { include: ["src/**", "docs/*.md"], exclude: ["src/**/*.test.ts", "**/.env*"] });
    const report = budgetScopeJudge(s, [
      create("src/server/app.ts", 1),
      create("docs/guide.md", 1),
      create("docs/deep/guide.md", 1),
      create("package.json", 1),
      create("src/server/app.test.ts", 1),
      create("src/.env.local", 1),
    ]);
    expect(report.findings.map((f) => [f.path, f.message])).toEqual([
      ["docs/deep/guide.md", "docs/deep/guide.md is outside the include globs (src/**, docs/*.md)."],
      ["package.json", "package.json is outside the include globs (src/**, docs/*.md)."],
      ["src/server/app.test.ts", "src/server/app.test.ts matches an exclude glob (src/**/*.test.ts, **/.env*)."],
      ["src/.env.local", "src/.env.local matches an exclude glob (src/**/*.test.ts, **/.env*)."],
    ]);
    expect(report.findings.every((f) => f.pattern === "scope")).toBe(true);
    expect(report.rationale).toBe("6 files and 6 changed lines, no budget set; 4 paths out of scope.");
  });

  it("allows every path when there are no include globs", () => {
    const report = budgetScopeJudge(spec({}, { exclude: ["dist/**"] }), [create("anything/at/all.txt", 1)]);
    expect(report.passed).toBe(true);
  });

  it("refuses paths that leave the workspace even when the globs would match them", () => {
    const report = budgetScopeJudge(spec({}, { include: ["**"] }), [
      create("../outside.ts", 1),
      create("/etc/passwd", 1),
      create("src/../../x", 1),
    ]);
    expect(report.findings.map((f) => f.message)).toEqual([
      "../outside.ts points outside the workspace.",
      "/etc/passwd points outside the workspace.",
      "src/../../x points outside the workspace.",
    ]);
  });

  it("reports an artifact whose change cannot be measured", () => {
    const report = budgetScopeJudge(spec(), [{ path: "a.ts", operation: "modify", diff: "not a diff" }]);
    expect(report.passed).toBe(false);
    expect(report.findings[0]?.pattern).toBe("unmeasured");
  });
});

describe("scope globs", () => {
  it("reads a plain directory as everything under it", () => {
    const s = spec({}, { include: ["src", "docs/"], exclude: ["src/generated"] });
    const report = budgetScopeJudge(s, [
      create("src/a.ts", 1),
      create("docs/x/y.md", 1),
      create("srcx/a.ts", 1),
      create("src/generated/client.ts", 1),
    ]);
    expect(report.findings.map((f) => f.path)).toEqual(["srcx/a.ts", "src/generated/client.ts"]);
  });
});

import { describe, expect, it } from "vitest";
import { taskFilterSchema } from "../src/shared/task-list.js";
import { LIMITS, taskSpecSchema } from "../src/shared/task-spec.js";

describe("task spec schema", () => {
  it("fills defaults for a minimal spec", () => {
    const spec = taskSpecSchema.parse({ title: "  Add a README  " });
    expect(spec).toMatchObject({
      title: "Add a README",
      description: "",
      priority: "medium",
      riskTier: 2,
      mode: "feature",
      capability: "script",
      acceptanceCriteria: [],
      scope: { include: [], exclude: [] },
      budget: {},
      input: {},
    });
  });

  it("accepts a complete spec", () => {
    const r = taskSpecSchema.safeParse({
      title: "Fix the parser",
      description: "It crashes on empty input",
      priority: "critical",
      riskTier: 1,
      mode: "fix",
      capability: "typescript",
      acceptanceCriteria: [
        { text: "tests pass", check: { kind: "command", command: "npm test" } },
        { text: "no console.log", check: { kind: "pattern", pattern: "console\\.log", mustMatch: false } },
        { text: "reviewed by a human" },
      ],
      scope: { include: ["src/**"], exclude: ["src/generated/**"] },
      budget: { maxFiles: 5, maxLinesChanged: 200, maxDurationSec: 600 },
      input: { script: "echo hi > out.txt" },
    });
    expect(r.success).toBe(true);
  });

  it.each([
    [{ title: "" }, "title", "Title is required"],
    [{ title: "   " }, "title", "Title is required"],
    [{ title: "x".repeat(LIMITS.title + 1) }, "title", "at most 200"],
    [{ title: "t", priority: "urgent" }, "priority", "Priority must be"],
    [{ title: "t", riskTier: 4 }, "riskTier", "Risk tier must be 1, 2 or 3"],
    [{ title: "t", mode: "rewrite" }, "mode", "Mode must be"],
    [{ title: "t", capability: "Has Spaces" }, "capability", "Capability may contain only"],
    [{ title: "t", budget: { maxFiles: 0 } }, "budget.maxFiles", "at least 1"],
    [{ title: "t", budget: { maxDurationSec: 1.5 } }, "budget.maxDurationSec", ""],
    [{ title: "t", scope: { include: [""] } }, "scope.include.0", "Glob must not be empty"],
    [{ title: "t", acceptanceCriteria: [{ text: "" }] }, "acceptanceCriteria.0.text", "Criterion text is required"],
    [
      { title: "t", acceptanceCriteria: [{ text: "x", check: { kind: "command", command: "" } }] },
      "acceptanceCriteria.0.check.command",
      "Check command is required",
    ],
    [{ title: "t", input: { blob: "x".repeat(LIMITS.inputBytes) } }, "input", "KiB"],
    [
      { title: "t", acceptanceCriteria: Array.from({ length: 51 }, () => ({ text: "c" })) },
      "acceptanceCriteria",
      "At most 50",
    ],
  ])("refuses %j at %s", (input, path, message) => {
    const r = taskSpecSchema.safeParse(input);
    expect(r.success).toBe(false);
    const issue = r.error?.issues.find((i) => i.path.join(".") === path);
    expect(issue, JSON.stringify(r.error?.issues)).toBeDefined();
    expect(issue?.message).toContain(message);
  });
});

describe("task filter schema", () => {
  it("coerces dates from URL strings", () => {
    const f = taskFilterSchema.parse({ createdFrom: "2026-01-01", createdTo: "2026-02-01" });
    expect(f.createdFrom).toBeInstanceOf(Date);
    expect(f.sort).toBe("created_desc");
  });
  it("refuses an inverted range", () => {
    const r = taskFilterSchema.safeParse({ createdFrom: "2026-02-01", createdTo: "2026-01-01" });
    expect(r.error?.issues[0]?.message).toBe("Created from must not be after created to");
  });
  it("refuses unknown states", () => {
    expect(taskFilterSchema.safeParse({ states: ["done"] }).success).toBe(false);
  });
});

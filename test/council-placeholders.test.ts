import { describe, expect, it } from "vitest";
import { placeholderJudge } from "../src/server/council/placeholder-judge.js";
import { scanForPlaceholders } from "../src/server/council/placeholders.js";
import { judgeReportSchema } from "../src/shared/verdict.js";
import type { Artifact } from "../src/shared/worker-protocol.js";

/** One line per language and form; each must be found, with the pattern that names it. */
const CORPUS: Array<[file: string, line: string, pattern: string]> = [
  // JavaScript / TypeScript
  ["app.ts", "// FIXME: handle the empty list", "fixme-marker"],
  ["app.ts", "/* TODO: */", "todo-marker"],
  ["app.ts", "  // TODO wire the retry policy", "todo-comment"],
  ["app.ts", " * TODO describe the options", "todo-comment"],
  ["app.ts", 'throw new Error("TODO: validate input");', "todo-marker"],
  ["app.ts", 'throw new Error("TODO validate input");', "throw-todo"],
  ["app.ts", "throw Error(`not implemented`)", "throw-todo"],
  ["app.ts", 'return { error: "not yet implemented" };', "not-implemented-text"],
  ["app.tsx", "<div>{/* TODO */}</div>", "todo-comment"],
  ["app.ts", 'const label = "PLACEHOLDER";', "placeholder"],
  // Python
  ["main.py", "# TODO: x", "todo-marker"],
  ["main.py", "    raise NotImplementedError", "python-not-implemented"],
  ["main.py", '    raise NotImplementedError("subclasses override this")', "python-not-implemented"],
  ["main.py", '    raise RuntimeError("not implemented")', "raise-todo"],
  ["main.py", "    pass  # TODO", "todo-comment"],
  // Rust
  ["lib.rs", "    todo!()", "rust-todo"],
  ["lib.rs", '    unimplemented!("parse the header")', "rust-unimplemented"],
  ["lib.rs", 'panic!("not implemented")', "go-panic-todo"],
  ["lib.rs", "/// FIXME handle overflow", "todo-comment"],
  // Go
  ["main.go", 'panic("TODO")', "go-panic-todo"],
  ["main.go", '\tpanic("unimplemented")', "go-panic-todo"],
  ["main.go", "\t// XXX: races with Close", "xxx-marker"],
  // Java
  ["A.java", 'throw new UnsupportedOperationException("Not implemented yet");', "java-unsupported"],
  ["A.java", 'throw new RuntimeException("TODO");', "throw-todo"],
  ["A.java", "// HACK: skip validation", "hack-marker"],
  // C#
  ["A.cs", "throw new NotImplementedException();", "csharp-not-implemented"],
  ["A.cs", 'throw new InvalidOperationException(@"not implemented");', "throw-todo"],
  // Kotlin
  ["A.kt", 'fun area(): Double = TODO("circle")', "kotlin-todo"],
  // Ruby
  ["a.rb", "  raise NotImplementedError, 'subclass must define'", "python-not-implemented"],
  ["a.rb", '  raise "not implemented"', "raise-todo"],
  ["a.rb", "  # FIXME: n+1 query", "fixme-marker"],
  // Shell
  ["run.sh", "# TODO: x", "todo-marker"],
  ["run.sh", 'echo "not implemented" >&2; exit 1', "not-implemented-string"],
  ["run.sh", "  # stub until the API exists", "stub-comment"],
  // SQL
  ["q.sql", "-- TODO: add an index", "todo-marker"],
  ["q.sql", "SELECT 1; -- FIXME", "todo-comment"],
  ["q.sql", "-- not implemented", "not-implemented-comment"],
  // Markup
  ["index.html", "<!-- TODO -->", "todo-comment"],
  ["README.md", "Export is not implemented yet.", "not-implemented-text"],
];

describe("placeholder scanner over many languages", () => {
  it.each(CORPUS)("%s: %s", (file, line, pattern) => {
    const text = `header\n${line}\nfooter`;
    expect(scanForPlaceholders(file, text)).toEqual([{ path: file, line: 2, pattern, snippet: line.trim() }]);
  });

  it.each([
    ["app.ts", "const todos = await listTodos(user);"],
    ["app.ts", "todos.filter((todo) => !todo.done)"],
    ["app.tsx", '<input placeholder="Search tasks" />'],
    ["app.tsx", "<Placeholder width={40} />"],
    ["app.tsx", "const placeholderText = props.Placeholder ?? 'Name';"],
    ["app.ts", "// Retry once the TODO list is empty"],
    ["app.ts", 'res.writeHead(501, "Not Implemented");'],
    ["app.ts", "if (i-- > 0) run();"],
    ["app.ts", 'spawn("server", ["--stub"]);'],
    ["main.py", "        return NotImplemented"],
    ["main.py", "class Stubborn:  # keeps retrying"],
    ["lib.rs", "let todo_items = my_todo!(x);"],
    ["A.cs", "catch (NotImplementedException e) { Log(e); }"],
    ["A.java", "return Collections.unmodifiableList(items); // throws UnsupportedOperationException on add"],
    ["q.sql", "SELECT count(*) FROM todo WHERE done = false;"],
    ["README.md", "Everything described here is implemented and tested."],
    ["app.ts", 'const hasFix = text.includes("fixme");'],
  ])("does not flag %s: %s", (file, line) => {
    expect(scanForPlaceholders(file, line)).toEqual([]);
  });

  it("numbers lines across CRLF line endings", () => {
    expect(scanForPlaceholders("w.bat", "@echo off\r\nREM TODO fill in\r\n").map((f) => f.line)).toEqual([2]);
  });
});

const create = (path: string, content: string): Artifact => ({ path, operation: "create", content });

describe("placeholder judge", () => {
  it("passes clean artifacts", () => {
    const report = placeholderJudge([
      create("src/sum.ts", "export const sum = (a: number, b: number) => a + b;\n"),
      { path: "old.ts", operation: "delete" },
    ]);
    expect(report).toEqual({
      judge: "placeholder",
      passed: true,
      hardFail: false,
      findings: [],
      rationale: "No placeholders in 1 artifact.",
    });
  });

  it("hard-fails on any placeholder, with path, line, pattern and snippet", () => {
    const report = placeholderJudge([
      create("./src/a.py", "def f():\n    raise NotImplementedError\n"),
      create("src/b.ts", "const x = 1;\n"),
      create("src/c.rs", "fn g() {\n    // TODO: cache\n    todo!()\n}\n"),
    ]);
    expect(report.passed).toBe(false);
    expect(report.hardFail).toBe(true);
    expect(report.findings).toEqual([
      {
        judge: "placeholder",
        severity: "error",
        message: "raise NotImplementedError at src/a.py:2",
        path: "src/a.py",
        line: 2,
        pattern: "python-not-implemented",
        snippet: "raise NotImplementedError",
      },
      expect.objectContaining({ path: "src/c.rs", line: 2, pattern: "todo-marker", snippet: "// TODO: cache" }),
      expect.objectContaining({ path: "src/c.rs", line: 3, pattern: "rust-todo", snippet: "todo!()" }),
    ]);
    expect(report.rationale).toBe("3 placeholders in 2 of 3 artifacts.");
    expect(judgeReportSchema.safeParse(report).success).toBe(true);
  });

  it("scans only a diff's added lines, numbered as in the new file", () => {
    const diff = [
      "diff --git a/db/q.sql b/db/q.sql",
      "--- a/db/q.sql",
      "+++ b/db/q.sql",
      "@@ -1,4 +1,5 @@",
      " -- TODO: this one was already there",
      "--- FIXME: removed by the worker",
      "+SELECT 1;",
      "+-- FIXME: added by the worker",
      " SELECT 2;",
      " SELECT 3;",
      "@@ -20,3 +21,4 @@ WHERE x",
      " a",
      "+# TODO: second hunk",
      " b",
      "\\ No newline at end of file",
      " c",
    ].join("\n");
    const report = placeholderJudge([
      { path: "db/q.sql", operation: "modify", diff, content: "-- TODO: whole file ignored when a diff is given" },
    ]);
    expect(report.findings.map((f) => [f.path, f.line, f.pattern, f.snippet])).toEqual([
      ["db/q.sql", 3, "fixme-marker", "-- FIXME: added by the worker"],
      ["db/q.sql", 22, "todo-marker", "# TODO: second hunk"],
    ]);
  });

  it("falls back to the content when a diff has no hunks", () => {
    const report = placeholderJudge([
      { path: "a.go", operation: "modify", diff: "not a diff", content: 'package a\nfunc F() { panic("TODO") }\n' },
    ]);
    expect(report.findings.map((f) => f.line)).toEqual([2]);
  });

  it("caps the findings it lists and says how many more there were", () => {
    const content = Array.from({ length: 1_200 }, (_, i) => `// TODO: item ${i}`).join("\n");
    const report = placeholderJudge([create("big.ts", content)]);
    expect(report.findings).toHaveLength(1_000);
    expect(report.findings.at(-1)?.message).toBe("201 more findings of this judge are not listed.");
    expect(report.rationale).toBe("1200 placeholders in 1 of 1 artifact.");
  });
});

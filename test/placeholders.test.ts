import { describe, expect, it } from "vitest";
import { scanForPlaceholders } from "../src/server/council/placeholders.js";

describe("placeholder scanner", () => {
  it.each([
    ["a.ts", "// TODO: implement", "todo-marker"],
    ["a.ts", "  /* TODO(alice): later */", "todo-marker"],
    ["a.py", "# FIXME: broken", "fixme-marker"],
    ["a.ts", 'const x = "PLACEHOLDER";', "placeholder"],
    ["a.rs", "    unimplemented!()", "rust-unimplemented"],
    ["a.rs", "fn f() -> u8 { todo!() }", "rust-todo"],
    ["a.py", "    raise NotImplementedError", "python-not-implemented"],
    ["a.ts", 'throw new Error("TODO wire this")', "throw-todo"],
    ["a.ts", "throw new TypeError('not implemented')", "throw-todo"],
    ["a.md", "This feature is not yet implemented.", "not-implemented-text"],
    ["A.java", 'throw new UnsupportedOperationException("Not implemented yet");', "java-unsupported"],
    ["a.go", 'panic("TODO")', "go-panic-todo"],
    ["a.sql", "-- stub", "stub-comment"],
  ])("finds %s: %s", (path, line, pattern) => {
    const findings = scanForPlaceholders(path, `first line\n${line}\nlast line`);
    expect(findings).toEqual([{ path, line: 2, pattern, snippet: line.trim() }]);
  });

  it.each([
    "const todos = loadTodos();",
    "// Retry once the TODO list is empty",
    "fixmeLater = false",
    "the implementation is done",
    "placeholder={'Search tasks'}",
  ])("does not flag ordinary code: %s", (line) => {
    expect(scanForPlaceholders("a.ts", line)).toEqual([]);
  });

  it("reports every finding with its line", () => {
    const text = ["ok", "// TODO: a", "ok", "# FIXME: b"].join("\n");
    expect(scanForPlaceholders("x", text).map((f) => f.line)).toEqual([2, 4]);
  });
});

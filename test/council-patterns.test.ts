import { describe, expect, it } from "vitest";
import { compileCheckPattern } from "../src/shared/check-pattern.js";
import { taskSpecSchema } from "../src/shared/task-spec.js";

const issuesFor = (check: Record<string, unknown>) => {
  const r = taskSpecSchema.safeParse({
    title: "patterns",
    acceptanceCriteria: [{ text: "first" }, { text: "second", check: { kind: "pattern", ...check } }],
  });
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
};

describe("acceptance-check patterns: RE2 syntax, compiled when the spec is parsed", () => {
  it.each([
    ["(a)\\1", "backreferences (\\1 … \\9) are"],
    ["(?<x>a)\\k<x>", "named backreferences (\\k<name>) are"],
    ["(?P<x>a)(?P=x)", "named backreferences ((?P=name)) are"],
    ["foo(?=bar)", "lookaround"],
    ["foo(?!bar)", "lookaround"],
    ["(?<=foo)bar", "lookaround"],
    ["(?<!foo)bar", "lookaround"],
    ["(?>a+)b", "atomic groups"],
    ["a++b", "possessive quantifiers"],
    ["a{2}+", "possessive quantifiers"],
    ["(?(1)a|b)", "conditionals"],
    ["(a(?R)?b)", "recursion"],
  ])("refuses %s as unsupported, naming the construct", (pattern, what) => {
    const c = compileCheckPattern(pattern);
    expect(c).toMatchObject({ ok: false, field: "pattern", unsupported: true });
    expect(c.ok ? "" : c.message).toContain(`Unsupported in a check pattern: ${what}`);
    expect(issuesFor({ pattern })).toEqual([`acceptanceCriteria.1.check.pattern: ${c.ok ? "" : c.message}`]);
  });

  it.each([
    ["(unclosed[", "missing closing ]: `[`"],
    ["(open", "missing closing ): `(open`"],
    ["a**", "invalid nested repetition operator: `**`"],
    ["x{1001}", "invalid repeat count: `{1001}`"],
    ["\\Z", "invalid escape sequence: `\\Z`"],
  ])("refuses the invalid %s with RE2's reason", (pattern, why) => {
    const c = compileCheckPattern(pattern);
    expect(c).toMatchObject({ ok: false, field: "pattern" });
    expect(c.ok ? "" : c.message).toBe(`Not a valid regular expression (RE2 syntax): ${why}`);
  });

  it.each([
    "^(a+)+$",
    "\\\\1", // an escaped backslash, then a digit
    "[(?=]x", // inside a class these are plain characters
    "[]\\\\1]",
    "(?<name>\\w+)\\s*=",
    "(?i)todo",
    "\\p{Greek}+",
    "a{2,5}?",
    "\\Qa.b\\E",
    "\\Q(?=\\1\\E",
    "\\x{41}+",
    "a}+",
  ])("accepts %s", (pattern) => {
    expect(compileCheckPattern(pattern).ok).toBe(true);
    expect(issuesFor({ pattern })).toEqual([]);
  });

  it("maps the flags it supports and refuses the rest on the flags field", () => {
    const matches = (pattern: string, flags: string | undefined, text: string) => {
      const c = compileCheckPattern(pattern, flags);
      if (!c.ok) throw new Error(c.message);
      return c.regex.test(text);
    };
    expect(matches("abc", "i", "ABC")).toBe(true);
    expect(matches("abc", undefined, "ABC")).toBe(false);
    expect(matches("a.c", "s", "a\nc")).toBe(true);
    expect(matches("a.c", undefined, "a\nc")).toBe(false);
    // Multiline is always on: ^ and $ hold at every line.
    expect(matches("^b$", undefined, "a\nb\nc")).toBe(true);
    expect(matches("^b$", "mu", "a\nb\nc")).toBe(true);
    for (const flag of ["g", "y", "d", "v", "x"]) {
      expect(issuesFor({ pattern: "a", flags: flag })).toEqual([
        `acceptanceCriteria.1.check.flags: Flag "${flag}" is not supported; use i, s, m, u (i ignores case, s lets . match a newline; patterns are always multiline and Unicode)`,
      ]);
    }
    expect(issuesFor({ pattern: "a", flags: "imsu" })).toEqual([]);
    expect(issuesFor({ pattern: "a", flags: "ii" })).toEqual([
      'acceptanceCriteria.1.check.flags: Flag "i" is given twice',
    ]);
  });
});

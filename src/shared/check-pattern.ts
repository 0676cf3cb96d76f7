import { RE2JS } from "re2js";

/**
 * Acceptance-check patterns are written by operators and run by the council over whatever a worker
 * delivered. JavaScript's backtracking engine can take exponential time on such a pair (`^(a+)+$`
 * against `aaa…a!`), so patterns use RE2 syntax and RE2's engine (re2js, pure JavaScript), which
 * matches in time linear in the input. The same function validates a spec (web form and server share
 * the schema) and compiles the pattern in the council, so what is accepted is exactly what runs.
 */

/**
 * Flags a check may set, as in a JavaScript regex literal. Every pattern is tested line by line with
 * `^` and `$` at line boundaries, so `m` is always on; `u` is RE2's only mode (code points); `g` and
 * `y` say how to iterate, which means nothing for "does it appear", and `d`, `v` have no RE2 equivalent.
 */
const FLAGS: Readonly<Record<string, number>> = {
  i: RE2JS.CASE_INSENSITIVE,
  s: RE2JS.DOTALL,
  m: 0,
  u: 0,
};
export const SUPPORTED_PATTERN_FLAGS = Object.keys(FLAGS).join("");

export type PatternCompilation =
  | { ok: true; regex: RE2JS }
  | { ok: false; field: "pattern" | "flags"; message: string; unsupported: boolean };

/**
 * Constructs a backtracking engine has and RE2 deliberately lacks, with what to write instead. Found by
 * a scan of the pattern rather than from RE2's message, which for `\1` only says "invalid escape".
 */
const UNSUPPORTED: ReadonlyArray<{ test: RegExp; what: string }> = [
  { test: /^\\[1-9]/, what: "backreferences (\\1 … \\9) are" },
  { test: /^\\k</, what: "named backreferences (\\k<name>) are" },
  { test: /^\(\?P=/, what: "named backreferences ((?P=name)) are" },
  { test: /^\(\?<?[=!]/, what: "lookaround ((?=…), (?!…), (?<=…), (?<!…)) is" },
  { test: /^\(\?>/, what: "atomic groups ((?>…)) are" },
  { test: /^\(\?\(/, what: "conditionals ((?(…)…)) are" },
  { test: /^\(\?(?:R|[+-]?\d)\)/, what: "recursion ((?R), (?1)) is" },
  { test: /^(?:[*+?]|\{\d+(?:,\d*)?\})\+/, what: "possessive quantifiers (a++, a*+, a{2}+) are" },
];

/** The first unsupported construct outside a character class, if any. */
function unsupportedConstruct(pattern: string): string | null {
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === "\\") {
      const next = pattern[i + 1];
      if (!inClass) {
        const hit = UNSUPPORTED.find((u) => u.test.test(pattern.slice(i, i + 4)));
        if (hit) return hit.what;
      }
      if (next === "Q") {
        // \Q…\E quotes everything up to \E (or the end).
        const end = pattern.indexOf("\\E", i + 2);
        i = end === -1 ? pattern.length : end + 1;
      } else if ((next === "p" || next === "P" || next === "x") && pattern[i + 2] === "{") {
        // \p{Greek}, \x{41}: the braces belong to the escape, not to a repeat.
        const end = pattern.indexOf("}", i + 3);
        i = end === -1 ? pattern.length : end;
      } else {
        i++;
      }
      continue;
    }
    if (inClass) {
      if (ch === "]") inClass = false;
      continue;
    }
    if (ch === "[") {
      inClass = true;
      // `[]…]` and `[^]…]`: a `]` right after the opening is a literal.
      if (pattern[i + 1] === "^") i++;
      if (pattern[i + 1] === "]") i++;
      continue;
    }
    const hit = UNSUPPORTED.find((u) => u.test.test(pattern.slice(i, i + 16)));
    if (hit) return hit.what;
  }
  return null;
}

/** Compiles a check's pattern with RE2 semantics, or says, for the field at fault, why it cannot run. */
export function compileCheckPattern(pattern: string, flags = ""): PatternCompilation {
  let bits = RE2JS.MULTILINE;
  const seen = new Set<string>();
  for (const f of flags) {
    const bit = FLAGS[f];
    if (bit === undefined) {
      return {
        ok: false,
        field: "flags",
        unsupported: true,
        message: `Flag "${f}" is not supported; use ${SUPPORTED_PATTERN_FLAGS.split("").join(", ")} (i ignores case, s lets . match a newline; patterns are always multiline and Unicode)`,
      };
    }
    if (seen.has(f)) return { ok: false, field: "flags", unsupported: false, message: `Flag "${f}" is given twice` };
    seen.add(f);
    bits |= bit;
  }
  const construct = unsupportedConstruct(pattern);
  if (construct) {
    return {
      ok: false,
      field: "pattern",
      unsupported: true,
      message: `Unsupported in a check pattern: ${construct} not available in RE2 syntax, which patterns use so that matching takes linear time`,
    };
  }
  try {
    return { ok: true, regex: RE2JS.compile(pattern, bits) };
  } catch (err) {
    // re2js compiles the flags as a prefix such as `(?m)`; the fragment it quotes should be the operator's own.
    const why = (err as Error).message.replace(/^error parsing regexp: /, "").replace(/`(?:\(\?[ims]\))+/, "`");
    return {
      ok: false,
      field: "pattern",
      unsupported: /unsupported/i.test(why),
      message: `Not a valid regular expression (RE2 syntax): ${why}`,
    };
  }
}

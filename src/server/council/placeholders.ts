/**
 * The placeholder scanner: finds unfinished work in source text. A pure module, used on worker
 * artifacts by the council's placeholder judge and on the project's own sources by
 * `npm run check:placeholders`. (This file is the one source file the project check skips:
 * it has to spell the patterns out.)
 */
export interface PlaceholderPattern {
  id: string;
  description: string;
  regex: RegExp;
}

/**
 * Markers count only in capitals (`TODO:`, `PLACEHOLDER`), so ordinary words stay clear: a `todos`
 * list, a React `placeholder` prop, a `Placeholder` component. A bare `TODO` counts where a comment
 * starts with it, not in prose ("the TODO list"). "Not implemented" counts in a comment, in a
 * thrown or raised error, or starting a string in lower case; the HTTP 501 reason phrase
 * "Not Implemented" in title case does not.
 */
const COMMENT = String.raw`(?:\/\/+|\/\*+|(?:^|\s)#+|(?:^|\s)--|^\s*\*|<!--|^\s*;+|^\s*REM\b)`;
const NOT_IMPLEMENTED = String.raw`not\s+(?:yet\s+)?implemented`;
const ERROR_TEXT = `(?:TODO|FIXME|${NOT_IMPLEMENTED}|unimplemented)`;

export const PLACEHOLDER_PATTERNS: readonly PlaceholderPattern[] = [
  { id: "todo-marker", description: "TODO: marker", regex: /\bTODO\s*(\([^)]*\))?\s*:/ },
  { id: "fixme-marker", description: "FIXME: marker", regex: /\bFIXME\s*(\([^)]*\))?\s*:/ },
  { id: "xxx-marker", description: "XXX: marker", regex: /\bXXX\s*:/ },
  { id: "hack-marker", description: "HACK: marker", regex: /\bHACK\s*:/ },
  {
    id: "todo-comment",
    description: "comment starting with TODO / FIXME",
    regex: new RegExp(`${COMMENT}\\s*(TODO|FIXME|XXX)\\b`),
  },
  { id: "placeholder", description: "PLACEHOLDER", regex: /\bPLACEHOLDER\b/ },
  { id: "rust-unimplemented", description: "Rust unimplemented!()", regex: /\bunimplemented!\s*\(/ },
  { id: "rust-todo", description: "Rust todo!()", regex: /\btodo!\s*\(/ },
  { id: "kotlin-todo", description: "Kotlin TODO()", regex: /\bTODO\(\s*("[^"]*")?\s*\)/ },
  {
    id: "python-not-implemented",
    description: "raise NotImplementedError",
    regex: /\braise\s+NotImplemented(Error)?\b/,
  },
  {
    id: "java-unsupported",
    description: 'UnsupportedOperationException("Not implemented")',
    regex: /UnsupportedOperationException\(\s*"[^"]*implement/i,
  },
  {
    id: "csharp-not-implemented",
    description: "throw new NotImplementedException()",
    regex: /\bthrow\s+new\s+NotImplementedException\b/,
  },
  {
    id: "throw-todo",
    description: 'throw new Error("TODO…")',
    regex: new RegExp(
      String.raw`\bthrow\s+(?:new\s+)?[\w.]*(?:Error|Exception)\s*\(\s*[@$]?["'\`]\s*${ERROR_TEXT}`,
      "i",
    ),
  },
  {
    id: "raise-todo",
    description: 'raise "TODO…" (Python, Ruby)',
    regex: new RegExp(String.raw`\braise\s+(?:[\w.]+\s*[(,]\s*)?[rfbu]?["']\s*${ERROR_TEXT}`, "i"),
  },
  {
    id: "go-panic-todo",
    description: 'panic("TODO…")',
    regex: new RegExp(String.raw`\bpanic!?\(\s*["\`]\s*${ERROR_TEXT}`, "i"),
  },
  {
    id: "not-implemented-text",
    description: '"not yet implemented"',
    regex: /\bnot\s+yet\s+implemented\b|\bnot\s+implemented\s+yet\b/i,
  },
  {
    id: "not-implemented-comment",
    description: "not implemented (comment)",
    regex: new RegExp(`${COMMENT}\\s*${NOT_IMPLEMENTED}\\b`, "i"),
  },
  {
    id: "not-implemented-string",
    description: '"not implemented" (string)',
    regex: /["'`]\s*[Nn]ot\s+implemented\b/,
  },
  {
    id: "stub-comment",
    description: "stub / implement-me comment",
    // Whitespace after the marker, so a command-line flag such as `--stub` is not a comment.
    regex: new RegExp(`${COMMENT}\\s+(stub\\b|implement me\\b|fill (this|me) in\\b)`, "i"),
  },
];

export interface PlaceholderFinding {
  path: string;
  line: number;
  pattern: string;
  snippet: string;
}

/** Every line of `text` that matches a pattern, one finding per line (the first pattern that matches). */
export function scanForPlaceholders(path: string, text: string): PlaceholderFinding[] {
  const findings: PlaceholderFinding[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((content, i) => {
    const hit = PLACEHOLDER_PATTERNS.find((p) => p.regex.test(content));
    if (hit) findings.push({ path, line: i + 1, pattern: hit.id, snippet: content.trim().slice(0, 200) });
  });
  return findings;
}

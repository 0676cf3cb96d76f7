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

export const PLACEHOLDER_PATTERNS: readonly PlaceholderPattern[] = [
  { id: "todo-marker", description: "TODO: marker", regex: /\bTODO\s*(\([^)]*\))?\s*:/ },
  { id: "fixme-marker", description: "FIXME: marker", regex: /\bFIXME\s*(\([^)]*\))?\s*:/ },
  { id: "xxx-marker", description: "XXX: marker", regex: /\bXXX\s*:/ },
  { id: "hack-marker", description: "HACK: marker", regex: /\bHACK\s*:/ },
  { id: "placeholder", description: "PLACEHOLDER", regex: /\bPLACEHOLDER\b/ },
  { id: "rust-unimplemented", description: "Rust unimplemented!()", regex: /\bunimplemented!\s*\(/ },
  { id: "rust-todo", description: "Rust todo!()", regex: /\btodo!\s*\(/ },
  { id: "python-not-implemented", description: "raise NotImplementedError", regex: /\braise\s+NotImplementedError\b/ },
  {
    id: "throw-todo",
    description: 'throw new Error("TODO…")',
    regex: /\bthrow\s+new\s+\w*Error\s*\(\s*["'`]\s*(TODO|FIXME|not implemented)/i,
  },
  {
    id: "java-unsupported",
    description: 'UnsupportedOperationException("Not implemented")',
    regex: /UnsupportedOperationException\(\s*"[^"]*implement/i,
  },
  { id: "go-panic-todo", description: 'panic("TODO…")', regex: /\bpanic\(\s*"(TODO|not implemented)/i },
  { id: "not-implemented-text", description: '"not yet implemented"', regex: /\bnot\s+(yet\s+)?implemented\b/i },
  {
    id: "stub-comment",
    description: "stub / implement-me comment",
    regex: /(\/\/|#|\/\*|--)\s*(stub\b|implement me\b|fill (this|me) in\b)/i,
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

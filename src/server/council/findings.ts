import type { Finding } from "../../shared/worker-protocol.js";

/** Cuts text to the length a finding field allows, marking the cut. */
export function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** The most findings one judge reports; past that the report says how many more there were. */
export const MAX_FINDINGS_PER_JUDGE = 1_000;

export function capFindings(judge: string, findings: Finding[], max = MAX_FINDINGS_PER_JUDGE): Finding[] {
  if (findings.length <= max) return findings;
  const more = findings.length - (max - 1);
  return [
    ...findings.slice(0, max - 1),
    { judge, severity: "error", message: `${more} more findings of this judge are not listed.` },
  ];
}

export const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** A path as written in findings and matched against globs: forward slashes, no leading "./". */
export function normalizePath(path: string): string {
  return path.replace(/\\/g, "/").replace(/^(\.\/)+/, "");
}

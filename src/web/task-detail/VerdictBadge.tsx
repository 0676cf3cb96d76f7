import type { Verdict } from "../../shared/verdict.js";

const LABELS: Record<Verdict, string> = {
  accept: "Accepted",
  changes_requested: "Changes requested",
  reject: "Rejected",
};

export function VerdictBadge({ verdict }: { verdict: Verdict }) {
  return (
    <span className="verdict-badge" data-verdict={verdict}>
      {LABELS[verdict]}
    </span>
  );
}

/**
 * Whether a reason (the task's, or a state change's) is the verdict's rationale: the task keeps the council's
 * rationale as its reason, clipped to 2,000 characters with any NUL replaced. The console shows that text once,
 * on the Verdict tab, and the verdict as a badge elsewhere.
 */
export function isVerdictRationale(reason: string | null | undefined, rationale: string | null | undefined): boolean {
  if (!reason || !rationale) return false;
  return rationale.replaceAll("\u0000", "\uFFFD").startsWith(reason);
}

/** `value` as a verdict, or null: event data is loosely typed. */
export function asVerdict(value: unknown): Verdict | null {
  return typeof value === "string" && Object.hasOwn(LABELS, value) ? (value as Verdict) : null;
}

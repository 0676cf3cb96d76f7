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

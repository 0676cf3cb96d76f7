import type { ApprovalTierPolicy } from "../../shared/approvals.js";
import type { RiskTier } from "../../shared/task-spec.js";
import { trpc } from "../trpc.js";

/** 60 s, 90 s, 2 min, 1 h 30 min: whole units, as an operator reads a policy. */
export function formatMs(ms: number): string {
  const sec = Math.round(ms / 1000);
  if (sec < 120 && sec % 60 !== 0) return `${sec} s`;
  const min = Math.floor(sec / 60);
  const restSec = sec % 60;
  if (min < 60) return restSec ? `${min} min ${restSec} s` : `${min} min`;
  const h = Math.floor(min / 60);
  const restMin = min % 60;
  return restMin ? `${h} h ${restMin} min` : `${h} h`;
}

/** What the tier's approval policy asks once the council accepts an attempt. */
function approvalText(a: ApprovalTierPolicy): string {
  if (!a.required) return "Not needed: the council's acceptance is final";
  const who = a.approver === "admin" ? "an admin" : "an operator";
  return `Needed: ${who}${a.fourEyes ? " other than the task's creator" : ""} approves the accepted result`;
}

interface Props {
  tier: RiskTier;
  /** The form's Max duration field as typed: a positive whole number of seconds overrides the tier's deadline. */
  maxDurationSec: string;
}

/**
 * What bounds a task of the chosen tier: the server's retry policy for it (tries per attempt, the idle timeout of
 * each try, attempts), the deadline each attempt gets (the task's Max duration or else the tier's), and whether
 * an accepted result waits for a person's approval (APPROVAL_POLICY).
 */
export function TierTimeouts({ tier, maxDurationSec }: Props) {
  const policies = trpc.system.tierPolicies.useQuery(undefined, { staleTime: 5 * 60_000 });
  const policy = policies.data?.find((p) => p.tier === tier);
  if (!policy) {
    return (
      <p className="hint tier-timeouts" data-testid="tier-timeouts">
        {policies.isError ? "The tier's timeouts could not be loaded." : null}
      </p>
    );
  }
  const budget = /^\d+$/.test(maxDurationSec.trim()) ? Number(maxDurationSec) : 0;
  const deadline =
    budget > 0 ? `${formatMs(budget * 1000)} (Max duration)` : `${formatMs(policy.deadlineMs)} (tier ${tier})`;
  return (
    <dl className="hint tier-timeouts" data-testid="tier-timeouts" aria-live="polite">
      <div>
        <dt>Tier {tier} tries</dt>
        <dd data-testid="tier-tries">
          {policy.tries} per attempt, {policy.attempts} {policy.attempts === 1 ? "attempt" : "attempts"}
        </dd>
      </div>
      <div>
        <dt>Idle timeout per try</dt>
        <dd
          data-testid="tier-idle-timeout"
          title="A try ends when the worker sends nothing (no output, no heartbeat) for this long"
        >
          {formatMs(policy.tryTimeoutMs)} without a word from the worker
        </dd>
      </div>
      <div>
        <dt>Deadline per attempt</dt>
        <dd data-testid="tier-deadline">{deadline}</dd>
      </div>
      <div>
        <dt>Approval</dt>
        <dd data-testid="tier-approval">{approvalText(policy.approval)}</dd>
      </div>
    </dl>
  );
}

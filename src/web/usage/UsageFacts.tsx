import { type AttemptUsage, formatTokens, formatUsd, type TaskUsage } from "../../shared/usage.js";

const tokens = (n: number | null) => (n === null ? "—" : formatTokens(n));

/** One attempt's reported usage as facts of its card (inside a `dl`); nothing when the worker reported none. */
export function AttemptUsageFacts({ usage }: { usage: AttemptUsage | null }) {
  if (!usage) return null;
  return (
    <>
      <div>
        <dt>Tokens in / out</dt>
        <dd data-testid="attempt-tokens">
          {tokens(usage.inputTokens)} / {tokens(usage.outputTokens)}
        </dd>
      </div>
      <div>
        <dt>Model</dt>
        <dd>{usage.model ? <code>{usage.model}</code> : <span className="muted">not reported</span>}</dd>
      </div>
      <div>
        <dt>Cost</dt>
        <dd data-testid="attempt-cost">
          {usage.costUsd === null ? <span className="muted">not reported</span> : formatUsd(usage.costUsd)}
        </dd>
      </div>
    </>
  );
}

/** A task's usage summed over its attempts, as one fact of the overview. */
export function TaskUsageFact({ usage }: { usage: TaskUsage }) {
  return (
    <div>
      <dt>Usage</dt>
      <dd data-testid="task-usage">
        {usage.attempts === 0 ? (
          <span className="muted">No attempt reported usage</span>
        ) : (
          <>
            {usage.costUsd === null ? "Cost not reported" : formatUsd(usage.costUsd)} ·{" "}
            {formatTokens(usage.inputTokens)} tokens in, {formatTokens(usage.outputTokens)} out
            {usage.models.length ? (
              <>
                {" "}
                · <code>{usage.models.join(", ")}</code>
              </>
            ) : null}{" "}
            <span className="muted">
              ({usage.attempts} {usage.attempts === 1 ? "attempt" : "attempts"})
            </span>
          </>
        )}
      </dd>
    </div>
  );
}

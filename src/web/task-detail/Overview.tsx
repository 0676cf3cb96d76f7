import { formatUsd } from "../../shared/usage.js";
import type { RouterOutputs } from "../trpc.js";
import { TaskUsageFact } from "../usage/UsageFacts.js";

type TaskDetail = RouterOutputs["tasks"]["get"];

function Budget({ budget }: { budget: TaskDetail["spec"]["budget"] }) {
  const parts = [
    budget.maxFiles != null ? `${budget.maxFiles} files` : null,
    budget.maxLinesChanged != null ? `${budget.maxLinesChanged} changed lines` : null,
    budget.maxDurationSec != null ? `${budget.maxDurationSec} s` : null,
    budget.maxCostUsd != null ? `${formatUsd(budget.maxCostUsd)} per attempt` : null,
  ].filter((p): p is string => p !== null);
  return <>{parts.length ? `At most ${parts.join(", ")}` : "No limits"}</>;
}

function GlobList({ globs, empty }: { globs: string[]; empty: string }) {
  if (!globs.length) return <span className="muted">{empty}</span>;
  return (
    <ul className="plain-list">
      {globs.map((g) => (
        <li key={g}>
          <code>{g}</code>
        </li>
      ))}
    </ul>
  );
}

export function Overview({ task }: { task: TaskDetail }) {
  const { spec } = task;
  return (
    <div className="overview">
      <section>
        <h2 className="section-title">Description</h2>
        {spec.description ? (
          <p className="description">{spec.description}</p>
        ) : (
          <p className="muted">No description.</p>
        )}
      </section>
      <dl className="spec-grid">
        <div>
          <dt>Priority</dt>
          <dd>
            <span className="priority" data-priority={spec.priority}>
              {spec.priority}
            </span>
          </dd>
        </div>
        <div>
          <dt>Risk tier</dt>
          <dd>{spec.riskTier}</dd>
        </div>
        <div>
          <dt>Mode</dt>
          <dd>{spec.mode}</dd>
        </div>
        <div>
          <dt>Required capability</dt>
          <dd>
            <code>{spec.capability}</code>
          </dd>
        </div>
        <div>
          <dt>Budget</dt>
          <dd>
            <Budget budget={spec.budget} />
          </dd>
        </div>
        <TaskUsageFact usage={task.usage} />
      </dl>
      <section>
        <h2 className="section-title">Acceptance criteria</h2>
        {spec.acceptanceCriteria.length ? (
          <ol className="criteria">
            {spec.acceptanceCriteria.map((c, i) => (
              // Criteria have no identity of their own; their order is their identity.
              // biome-ignore lint/suspicious/noArrayIndexKey: see above
              <li key={i}>
                {c.text}
                {c.check?.kind === "command" ? (
                  <div className="check">
                    Check: run <code>{c.check.command}</code>
                  </div>
                ) : null}
                {c.check?.kind === "pattern" ? (
                  <div className="check">
                    Check: {c.check.path ? <code>{c.check.path}</code> : "the artifacts"}{" "}
                    {c.check.mustMatch ? "must contain" : "must not contain"} <code>{c.check.pattern}</code>
                  </div>
                ) : null}
              </li>
            ))}
          </ol>
        ) : (
          <p className="muted">No acceptance criteria.</p>
        )}
      </section>
      <section className="scope">
        <h2 className="section-title">Scope</h2>
        <div className="scope-cols">
          <div>
            <h3>Include</h3>
            <GlobList globs={spec.scope.include} empty="Everything" />
          </div>
          <div>
            <h3>Exclude</h3>
            <GlobList globs={spec.scope.exclude} empty="Nothing" />
          </div>
        </div>
      </section>
      <section>
        <h2 className="section-title">Worker input</h2>
        <pre className="json" data-testid="task-input">
          {JSON.stringify(spec.input, null, 2)}
        </pre>
      </section>
    </div>
  );
}

import type { CriterionStatus } from "../../shared/verdict.js";
import { useHasRole } from "../components/useMe.js";
import type { RouterOutputs } from "../trpc.js";
import { FindingList } from "./Findings.js";
import { VerdictBadge } from "./VerdictBadge.js";
import { OverrideNotice, OverrideVerdict } from "./VerdictOverride.js";

type TaskDetail = RouterOutputs["tasks"]["get"];

const CRITERION_LABELS: Record<CriterionStatus, string> = {
  passed: "Passed",
  failed: "Failed",
  not_checked: "Not checked",
};

export function VerdictTab({ task }: { task: TaskDetail }) {
  const v = task.verdict;
  const isAdmin = useHasRole("admin");
  if (!v) {
    return <p className="muted">No verdict yet: the council judges an attempt once its worker has completed it.</p>;
  }
  return (
    <div className="verdict">
      <div className="verdict-head">
        <VerdictBadge verdict={v.verdict} />
        <span className="muted">on attempt {v.attempt}</span>
        {isAdmin ? <OverrideVerdict taskId={task.id} state={task.state} /> : null}
      </div>
      {v.override ? <OverrideNotice override={v.override} /> : null}
      <section>
        <h2 className="section-title">Rationale</h2>
        <p className="description">{v.rationale}</p>
      </section>
      <section>
        <h2 className="section-title">Judges</h2>
        <ul className="judge-list">
          {v.judges.map((j) => (
            <li key={j.judge} className="judge" data-judge={j.judge} data-passed={j.passed}>
              <div className="judge-head">
                <strong>{j.judge}</strong>
                <span className="tag" data-tone={j.passed ? "ok" : "bad"}>
                  {j.passed ? "Passed" : "Failed"}
                </span>
                {j.hardFail ? (
                  <span className="tag" data-tone="bad">
                    Hard fail
                  </span>
                ) : null}
              </div>
              {j.rationale ? <p className="judge-rationale">{j.rationale}</p> : null}
              <FindingList findings={j.findings} />
            </li>
          ))}
        </ul>
      </section>
      <section>
        <h2 className="section-title">Acceptance criteria</h2>
        {v.criteria.length ? (
          <div className="table-wrap">
            <table className="task-table">
              <thead>
                <tr>
                  <th scope="col">#</th>
                  <th scope="col">Criterion</th>
                  <th scope="col">Outcome</th>
                  <th scope="col">Detail</th>
                </tr>
              </thead>
              <tbody>
                {v.criteria.map((c) => (
                  <tr key={c.index}>
                    <td>{c.index + 1}</td>
                    <td className="wrap">{c.text}</td>
                    <td>
                      <span
                        className="tag"
                        data-tone={c.status === "passed" ? "ok" : c.status === "failed" ? "bad" : undefined}
                      >
                        {CRITERION_LABELS[c.status]}
                      </span>
                    </td>
                    <td className="wrap">{c.detail ? <pre className="snippet">{c.detail}</pre> : "—"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : (
          <p className="muted">The spec has no acceptance criteria.</p>
        )}
      </section>
    </div>
  );
}

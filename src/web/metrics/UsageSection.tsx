import { useMemo } from "react";
import { formatTokens, formatUsd, type UsageGroupRow, type UsageSums } from "../../shared/usage.js";
import { ErrorMessage } from "../components/ErrorMessage.js";
import { trpc } from "../trpc.js";

/** Whole UTC days shown: today and the 13 before it. */
const DAYS = 14;
const DAY_MS = 86_400_000;
const REFRESH_MS = 60_000;

const cost = (n: number | null) => (n === null ? <span className="muted">not reported</span> : formatUsd(n));

function UsageTable({ caption, head, rows }: { caption: string; head: string; rows: UsageGroupRow[] }) {
  return (
    <div className="table-wrap">
      <table className="task-table usage-table">
        <caption>{caption}</caption>
        <thead>
          <tr>
            <th scope="col">{head}</th>
            <th scope="col">Attempts</th>
            <th scope="col">Tokens in</th>
            <th scope="col">Tokens out</th>
            <th scope="col">Cost</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.key ?? ""} data-usage-row={r.label}>
              <th scope="row">{r.label}</th>
              <td>{formatTokens(r.attempts)}</td>
              <td>{formatTokens(r.inputTokens)}</td>
              <td>{formatTokens(r.outputTokens)}</td>
              <td>{cost(r.costUsd)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Total({ total }: { total: UsageSums }) {
  return (
    <p data-testid="usage-total">
      <strong>{total.costUsd === null ? "Cost not reported" : formatUsd(total.costUsd)}</strong> over{" "}
      {formatTokens(total.attempts)} {total.attempts === 1 ? "attempt" : "attempts"}: {formatTokens(total.inputTokens)}{" "}
      tokens in, {formatTokens(total.outputTokens)} out.
    </p>
  );
}

/**
 * What workers reported they used (tokens, cost) over the last 14 UTC days, by worker and by day: the
 * metrics.usage roll-ups, summed by the database. Attempts whose worker reported nothing are not counted.
 */
export function UsageSection() {
  const today = new Date().toISOString().slice(0, 10);
  const range = useMemo(() => {
    const to = new Date(`${today}T00:00:00Z`).getTime() + DAY_MS;
    return { from: new Date(to - DAYS * DAY_MS), to: new Date(to) };
  }, [today]);
  const byWorker = trpc.metrics.usage.useQuery({ ...range, groupBy: "worker" }, { refetchInterval: REFRESH_MS });
  const byDay = trpc.metrics.usage.useQuery({ ...range, groupBy: "day" }, { refetchInterval: REFRESH_MS });

  let body: React.ReactNode;
  if (byWorker.error || byDay.error) {
    body = <ErrorMessage title="Could not load the usage:" error={byWorker.error ?? byDay.error} />;
  } else if (!byWorker.data || !byDay.data) {
    body = <p className="muted">Loading the usage…</p>;
  } else if (byWorker.data.total.attempts === 0) {
    body = (
      <p className="muted" data-testid="usage-empty">
        No worker reported usage in the last {DAYS} days. A worker reports tokens, model and cost in its result's{" "}
        <code>usage</code>.
      </p>
    );
  } else {
    body = (
      <>
        <Total total={byWorker.data.total} />
        <div className="usage-tables">
          <UsageTable caption={`By worker, last ${DAYS} days`} head="Worker" rows={byWorker.data.groups} />
          <UsageTable caption="By day (UTC)" head="Day" rows={[...byDay.data.groups].reverse()} />
        </div>
      </>
    );
  }
  return (
    <section aria-labelledby="usage-heading" data-testid="usage-section">
      <h2 id="usage-heading">Usage and cost</h2>
      {body}
    </section>
  );
}

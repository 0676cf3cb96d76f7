import { useMemo } from "react";
import { ACTIVITY_RANGE_KEYS, type ActivityRange } from "../../shared/worker-detail.js";
import { ErrorMessage } from "../components/ErrorMessage.js";
import { formatShortDateTime } from "../lib/format.js";
import { formatMs, formatPercent } from "../metrics/format.js";
import { type ChartSeries, LineChart } from "../metrics/LineChart.js";
import { trpc } from "../trpc.js";

const RANGE_LABELS: Record<ActivityRange, string> = { "1h": "1 hour", "24h": "24 hours", "7d": "7 days" };
const BUCKET_LABELS: Record<ActivityRange, string> = { "1h": "minute", "24h": "hour", "7d": "6 hours" };

const COLORS = { blue: "#1f4fd1", green: "#17803d", amber: "#a15c00", red: "#b42318" };
const ATTEMPT_SERIES: ChartSeries[] = [
  { label: "Attempts", color: COLORS.blue },
  { label: "Failed share", color: COLORS.red, axis: "right" },
];
const LATENCY_SERIES: ChartSeries[] = [
  { label: "Run time p50", color: COLORS.green },
  { label: "Run time p95", color: COLORS.amber },
];

/** The worker's ended attempts over time (bucketed by the server): charts, and the same figures as a table. */
export function WorkerActivity({
  workerId,
  range,
  onRange,
}: {
  workerId: string;
  range: ActivityRange;
  onRange: (r: ActivityRange) => void;
}) {
  const activity = trpc.workers.activity.useQuery({ id: workerId, range }, { refetchInterval: 30_000 });
  const data = activity.data;
  const columns = useMemo(() => {
    const b = data?.buckets ?? [];
    const x = b.map((v) => v.start / 1000);
    return {
      attempts: [x, b.map((v) => v.attempts), b.map((v) => v.failedShare)] as [number[], ...(number | null)[][]],
      latency: [x, b.map((v) => v.p50Ms), b.map((v) => v.p95Ms)] as [number[], ...(number | null)[][]],
    };
  }, [data]);
  const used = data?.buckets.filter((b) => b.attempts > 0) ?? [];
  const xRange: [number, number] = data ? [data.from / 1000, data.to / 1000] : [0, 1];

  return (
    <section aria-labelledby="activity-heading" className="worker-activity">
      <div className="page-head">
        <h2 id="activity-heading">Error rate and latency</h2>
        <fieldset className="range-select">
          <legend className="visually-hidden">Time range</legend>
          {ACTIVITY_RANGE_KEYS.map((r) => (
            <button
              key={r}
              type="button"
              className="btn btn-small"
              aria-pressed={r === range}
              onClick={() => onRange(r)}
            >
              {RANGE_LABELS[r]}
            </button>
          ))}
        </fieldset>
      </div>
      {activity.error ? <ErrorMessage title="Could not load the activity:" error={activity.error} /> : null}
      {data ? (
        <>
          <div className="chart-grid">
            <div className="chart-cell" data-chart="attempts">
              {/* Keyed by range: the chart is built once per mount, with its range's buckets. */}
              <LineChart
                key={`a-${range}`}
                title="Attempts and failed share"
                unit={`attempts / ${BUCKET_LABELS[range]}`}
                rightUnit="failed"
                series={ATTEMPT_SERIES}
                data={columns.attempts}
                range={xRange}
                format={(v) => String(Math.round(v))}
                rightFormat={(v) => formatPercent(v)}
              />
            </div>
            <div className="chart-cell" data-chart="latency">
              <LineChart
                key={`l-${range}`}
                title="Run time percentiles"
                unit="duration"
                series={LATENCY_SERIES}
                data={columns.latency}
                range={xRange}
                format={(v) => formatMs(v)}
              />
            </div>
          </div>
          <details className="activity-table">
            <summary>
              The same figures as a table ({used.length} of {data.buckets.length} {BUCKET_LABELS[range]} buckets with
              attempts)
            </summary>
            {used.length === 0 ? (
              <p className="muted">No attempt ended on this worker in the last {RANGE_LABELS[range]}.</p>
            ) : (
              <div className="table-wrap">
                <table className="task-table">
                  <caption className="visually-hidden">Attempts per {BUCKET_LABELS[range]}</caption>
                  <thead>
                    <tr>
                      <th scope="col">From</th>
                      <th scope="col">Attempts</th>
                      <th scope="col">Failed</th>
                      <th scope="col">p50 run time</th>
                      <th scope="col">p95 run time</th>
                    </tr>
                  </thead>
                  <tbody>
                    {used.map((b) => (
                      <tr key={b.start}>
                        <th scope="row">{formatShortDateTime(new Date(b.start))}</th>
                        <td>{b.attempts}</td>
                        <td>
                          {b.failed} ({formatPercent(b.failedShare)})
                        </td>
                        <td>{formatMs(b.p50Ms)}</td>
                        <td>{formatMs(b.p95Ms)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </details>
          <p className="muted small">
            Attempts that ended on this worker, by the {BUCKET_LABELS[range]} they started in; failed share counts
            failed and lost attempts; run time is from start to end.
          </p>
        </>
      ) : activity.isPending ? (
        <p className="loading">Loading the activity…</p>
      ) : null}
    </section>
  );
}

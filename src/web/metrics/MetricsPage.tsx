import { useMemo, useSyncExternalStore } from "react";
import { useSearchParams } from "react-router-dom";
import { METRIC_RANGES, type MetricRangeKey } from "../../shared/metrics.js";
import { ErrorMessage } from "../components/ErrorMessage.js";
import { formatDateTime } from "../lib/format.js";
import { liveConnection } from "../trpc.js";
import { formatMs, formatPercent, formatRate } from "./format.js";
import { KpiTiles } from "./KpiTiles.js";
import { type ChartSeries, LineChart } from "./LineChart.js";
import { columns, type Sample } from "./series.js";
import { UsageSection } from "./UsageSection.js";
import { useLiveMetrics } from "./useLiveMetrics.js";
import { WorkerTable } from "./WorkerTable.js";

const COLORS = { blue: "#1f4fd1", green: "#17803d", amber: "#a15c00", red: "#b42318", teal: "#0b6b8a" };

interface ChartDef {
  key: string;
  title: string;
  unit: string;
  rightUnit?: string;
  format: (v: number) => string;
  rightFormat?: (v: number) => string;
  series: (ChartSeries & { value: (s: Sample) => number | null })[];
}

const CHARTS: readonly ChartDef[] = [
  {
    key: "throughput",
    title: "Throughput",
    unit: "tasks / min",
    format: (v) => formatRate(v),
    series: [{ label: "Completed / min", color: COLORS.blue, value: (s) => s.completedPerMin }],
  },
  {
    key: "latency",
    title: "Latency percentiles",
    unit: "duration",
    format: (v) => formatMs(v),
    series: [
      { label: "Execution p50", color: COLORS.green, value: (s) => s.execP50 },
      { label: "Execution p95", color: COLORS.amber, value: (s) => s.execP95 },
      { label: "Execution p99", color: COLORS.red, value: (s) => s.execP99 },
      { label: "Queue wait p95", color: COLORS.teal, dash: [6, 4], value: (s) => s.waitP95 },
    ],
  },
  {
    key: "queue",
    title: "Queue depth",
    unit: "tasks",
    format: (v) => formatRate(v),
    series: [
      { label: "Queued", color: COLORS.blue, value: (s) => s.queueDepth },
      { label: "Running", color: COLORS.green, value: (s) => s.running },
    ],
  },
  {
    key: "errors",
    title: "Errors and retries",
    unit: "retries / min",
    rightUnit: "attempts failed",
    format: (v) => formatRate(v),
    rightFormat: (v) => formatPercent(v),
    series: [
      { label: "Retries / min", color: COLORS.amber, value: (s) => s.retriesPerMin },
      { label: "Attempts failed", color: COLORS.red, axis: "right", value: (s) => s.errorRate },
    ],
  },
];

function parseRange(v: string | null) {
  return METRIC_RANGES.find((r) => r.key === v) ?? METRIC_RANGES[1];
}

export default function MetricsPage() {
  const [params, setParams] = useSearchParams();
  const range = parseRange(params.get("range"));
  const { latest, samples, minuteAgo, history, sub, end } = useLiveMetrics(range);
  const conn = useSyncExternalStore(liveConnection.subscribe, liveConnection.get);
  const xRange: [number, number] = [(end - range.ms) / 1000, end / 1000];

  const chartData = useMemo(
    () =>
      CHARTS.map((c) =>
        columns(
          samples,
          c.series.map((s) => s.value),
        ),
      ),
    [samples],
  );
  const measured = samples.length > 0;

  const receiving = conn.status === "connected" && sub.status === "pending" && latest !== null;
  let status: { tone: string; text: string };
  if (sub.status === "error") status = { tone: "bad", text: "Live figures stopped." };
  else if (conn.status !== "connected")
    status = {
      tone: "warn",
      text: latest
        ? `Not connected: showing the figures of ${formatDateTime(latest.at)} until the connection is back.`
        : "Not connected: waiting for the server.",
    };
  else if (!latest) status = { tone: "unknown", text: "Connected, waiting for the first snapshot…" };
  else status = { tone: "ok", text: `Live, updated ${formatDateTime(latest.at)}` };

  return (
    <div className="page">
      <div className="page-head">
        <h1>Metrics</h1>
        <fieldset className="range-select">
          <legend className="visually-hidden">Time range</legend>
          {METRIC_RANGES.map((r) => (
            <button
              key={r.key}
              type="button"
              className="btn btn-small"
              aria-pressed={r.key === range.key}
              onClick={() =>
                setParams(r.key === "1h" ? {} : { range: r.key satisfies MetricRangeKey }, { replace: true })
              }
            >
              {r.label}
            </button>
          ))}
        </fieldset>
      </div>
      <p
        className="live-state metrics-status"
        data-tone={status.tone}
        data-live={receiving ? "live" : "waiting"}
        data-updated-at={latest?.at.toISOString() ?? ""}
        aria-live="polite"
      >
        <span className="live-dot" aria-hidden="true" />
        {status.text}
      </p>
      {sub.status === "error" ? (
        <ErrorMessage title="The live figures stopped:" error={sub.error}>
          <button type="button" className="btn btn-small" onClick={() => sub.reset()}>
            Reconnect
          </button>
        </ErrorMessage>
      ) : null}
      <KpiTiles latest={latest} minuteAgo={minuteAgo} />
      {history.error ? <ErrorMessage title="Could not load the history:" error={history.error} /> : null}
      <section className="chart-grid" aria-label="Charts">
        {CHARTS.map((c, i) => (
          <div key={c.key} className="chart-cell" data-chart={c.key}>
            <LineChart
              title={c.title}
              unit={c.unit}
              rightUnit={c.rightUnit}
              series={c.series}
              data={chartData[i] ?? [[]]}
              range={xRange}
              format={c.format}
              rightFormat={c.rightFormat}
            />
            {!measured ? (
              <p className="chart-empty muted">
                {history.isPending ? "Loading the history…" : "No figures in this range yet: waiting for data."}
              </p>
            ) : null}
          </div>
        ))}
      </section>
      <section aria-labelledby="workers-heading">
        <h2 id="workers-heading">Workers</h2>
        {latest ? (
          <WorkerTable workers={latest.workers} windowMs={latest.windowMs} />
        ) : (
          <p className="muted">Waiting for the first snapshot…</p>
        )}
      </section>
      <UsageSection />
      <p className="muted small">
        Charts: {range.label} of persisted {range.step === 1 ? "one-minute" : `${range.step}-minute`} figures, then each
        live snapshot while this page is open. Percentiles and rates over a rolling window; gaps are time nobody
        measured (the server was not running).
      </p>
    </div>
  );
}

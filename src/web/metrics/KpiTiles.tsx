import type { MetricsSnapshot } from "../../shared/metrics.js";
import { formatMs, formatPercent, formatRate } from "./format.js";
import { fromSnapshot, type Sample } from "./series.js";

/** Whether a rising figure is good news, bad news, or neither. */
type Better = "up" | "down" | "neither";

interface Kpi {
  key: keyof Omit<Sample, "t">;
  label: string;
  format: (v: number | null) => string;
  better: Better;
  /** What the figure is taken over, shown under it. */
  over: (s: MetricsSnapshot) => string;
}

const windowText = (s: MetricsSnapshot) => `over the last ${Math.round(s.windowMs / 60_000)} min`;

const KPIS: readonly Kpi[] = [
  { key: "completedPerMin", label: "Completed / min", format: formatRate, better: "up", over: () => "last minute" },
  { key: "queueDepth", label: "Queue depth", format: formatRate, better: "down", over: () => "queued now" },
  { key: "running", label: "Running", format: formatRate, better: "neither", over: () => "running now" },
  {
    key: "successRate",
    label: "Tasks accepted",
    format: formatPercent,
    better: "up",
    over: (s) => `of tasks finished ${windowText(s)}`,
  },
  { key: "waitP95", label: "p95 queue wait", format: formatMs, better: "down", over: windowText },
  { key: "execP95", label: "p95 execution", format: formatMs, better: "down", over: windowText },
  { key: "retriesPerMin", label: "Retries / min", format: formatRate, better: "down", over: () => "last minute" },
  {
    key: "errorRate",
    label: "Attempts failed",
    format: formatPercent,
    better: "down",
    over: (s) => `of attempts ended ${windowText(s)}`,
  },
  {
    key: "awaitingApproval",
    label: "Awaiting approval",
    format: formatRate,
    better: "down",
    over: () => "waiting for a person now",
  },
  {
    key: "oldestApprovalWaitMs",
    label: "Oldest approval wait",
    format: formatMs,
    better: "down",
    over: (s) => (s.awaitingApproval ? "the longest-waiting task" : "none waiting"),
  },
];

function trendOf(now: number | null, before: number | null, better: Better, format: (v: number | null) => string) {
  if (now === null || before === null || Number.isNaN(now) || Number.isNaN(before)) return null;
  const delta = now - before;
  if (Math.abs(delta) < 1e-9) return { arrow: "→", text: "no change", tone: "neutral" };
  const up = delta > 0;
  const tone = better === "neither" ? "neutral" : up === (better === "up") ? "ok" : "bad";
  const magnitude = format(Math.abs(delta));
  return { arrow: up ? "▲" : "▼", text: `${up ? "+" : "−"}${magnitude}`, tone };
}

/** The headline figures of the latest snapshot, each with its change against a minute before. */
export function KpiTiles({ latest, minuteAgo }: { latest: MetricsSnapshot | null; minuteAgo: Sample | null }) {
  const now = latest ? fromSnapshot(latest) : null;
  return (
    <ul className="kpi-grid" aria-label="Key figures">
      {KPIS.map((k) => {
        const value = now ? now[k.key] : null;
        const trend = now ? trendOf(value, minuteAgo ? minuteAgo[k.key] : null, k.better, k.format) : null;
        return (
          <li key={k.key} className="kpi" data-kpi={k.key} data-value={value ?? ""}>
            <span className="kpi-label">{k.label}</span>
            <span className="kpi-value">{now ? k.format(value) : "…"}</span>
            <span className="kpi-foot">
              {trend ? (
                <span className="kpi-trend" data-tone={trend.tone} title="Change against one minute before">
                  <span aria-hidden="true">{trend.arrow}</span> {trend.text}
                  <span className="visually-hidden"> against one minute before</span>
                </span>
              ) : (
                <span className="kpi-trend muted" title="No figure from one minute before to compare with">
                  no trend yet
                </span>
              )}
              <span className="muted">{latest ? k.over(latest) : ""}</span>
            </span>
          </li>
        );
      })}
    </ul>
  );
}

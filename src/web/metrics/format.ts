/** Figures as the metrics page prints them; "—" stands for "nothing measured", never for zero. */

export function formatRate(v: number | null): string {
  if (v === null) return "—";
  return v >= 10 || Number.isInteger(v) ? v.toFixed(0) : v.toFixed(1);
}

export function formatPercent(v: number | null): string {
  if (v === null) return "—";
  const pct = v * 100;
  return `${pct >= 10 || pct === 0 ? pct.toFixed(0) : pct.toFixed(1)} %`;
}

export function formatMs(v: number | null): string {
  if (v === null) return "—";
  if (v < 1_000) return `${Math.round(v)} ms`;
  if (v < 60_000) return `${(v / 1_000).toFixed(v < 10_000 ? 2 : 1)} s`;
  return `${(v / 60_000).toFixed(1)} min`;
}

export function formatCount(v: number | null): string {
  return v === null ? "—" : String(v);
}

import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export interface ChartSeries {
  label: string;
  color: string;
  /** "right": drawn against the right-hand axis (a second unit). */
  axis?: "right";
  dash?: number[];
}

const HEIGHT = 220;

function showLatest(u: uPlot): void {
  const n = u.data[0]?.length ?? 0;
  if (u.cursor.idx == null && n > 0) u.setLegend({ idx: n - 1 });
}

/**
 * A uPlot line chart that lives as long as the component: created on mount, fed new columns with
 * `setData`, resized with its container, destroyed on unmount. The x range is the selected time range
 * ending now, so an empty stretch shows as empty rather than being stretched away.
 */
export function LineChart({
  title,
  unit,
  rightUnit,
  series,
  data,
  range,
  format,
  rightFormat,
}: {
  title: string;
  unit: string;
  rightUnit?: string;
  series: readonly ChartSeries[];
  data: uPlot.AlignedData;
  /** Seconds since the epoch: [start, end] of the x axis. */
  range: [number, number];
  format: (v: number) => string;
  rightFormat?: (v: number) => string;
}) {
  const holder = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const xRange = useRef(range);
  xRange.current = range;
  // The chart is built once per mount; later renders only hand it data.
  const initial = useRef({ title, unit, rightUnit, series, data, format, rightFormat });

  useEffect(() => {
    const el = holder.current;
    if (!el) return;
    const { series: defs, unit: yUnit, rightUnit: ru, format: fmt, rightFormat: rfmt, data: d } = initial.current;
    const hasRight = defs.some((s) => s.axis === "right");
    const opts: uPlot.Options = {
      width: Math.max(el.clientWidth, 200),
      height: HEIGHT,
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      // Away from the cursor the legend shows the newest figures rather than dashes.
      hooks: { setCursor: [(chart) => showLatest(chart)] },
      scales: {
        x: { time: true, range: () => xRange.current },
        y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] },
        ...(hasRight ? { r: { range: (_u: uPlot, _min: number, max: number) => [0, max > 0 ? max * 1.1 : 1] } } : {}),
      } as uPlot.Scales,
      series: [
        {},
        ...defs.map(
          (s): uPlot.Series => ({
            label: s.label,
            stroke: s.color,
            width: 2,
            dash: s.dash,
            scale: s.axis === "right" ? "r" : "y",
            spanGaps: false,
            points: { show: false },
            value: (_u, v) => (v == null ? "—" : s.axis === "right" && rfmt ? rfmt(v) : fmt(v)),
          }),
        ),
      ],
      axes: [
        {},
        { scale: "y", label: yUnit, values: (_u, ticks) => ticks.map(fmt), size: 60 },
        ...(hasRight
          ? [
              {
                scale: "r",
                side: 1,
                label: ru,
                grid: { show: false },
                values: (_u: uPlot, ticks: number[]) => ticks.map(rfmt ?? fmt),
                size: 60,
              } satisfies uPlot.Axis,
            ]
          : []),
      ],
    };
    const u = new uPlot(opts, d, el);
    plot.current = u;
    const resize = new ResizeObserver(() => u.setSize({ width: Math.max(el.clientWidth, 200), height: HEIGHT }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, []);

  useEffect(() => {
    const u = plot.current;
    if (!u) return;
    u.setData(data);
    showLatest(u);
  }, [data]);

  return (
    <figure className="chart" aria-label={title}>
      <figcaption className="chart-title">{title}</figcaption>
      <div ref={holder} className="chart-canvas" />
    </figure>
  );
}

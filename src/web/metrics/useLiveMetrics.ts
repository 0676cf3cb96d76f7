import { keepPreviousData } from "@tanstack/react-query";
import { useEffect, useMemo, useState } from "react";
import type { METRIC_RANGES, MetricRangeKey, MetricsSnapshot } from "../../shared/metrics.js";
import { trpc } from "../trpc.js";
import { appendLive, fromPoint, fromSnapshot, joinSamples, type Sample, sampleAgo } from "./series.js";

/** Live samples kept per bucket of this size; 0: every snapshot (short ranges show per-second detail). */
const LIVE_RESOLUTION_MS: Record<MetricRangeKey, number> = {
  "15m": 0,
  "1h": 0,
  "24h": 60_000,
  "7d": 5 * 60_000,
};

/** Persisted minutes close once a minute: the history is asked for again this often. */
const HISTORY_REFRESH_MS = 60_000;

export type MetricRange = (typeof METRIC_RANGES)[number];

/**
 * The selected range's persisted history joined with the live snapshots that followed it. The
 * subscription lives as long as the component that uses this hook; unmounting it ends the stream.
 */
export function useLiveMetrics(range: MetricRange) {
  const [latest, setLatest] = useState<MetricsSnapshot | null>(null);
  const [live, setLive] = useState<Sample[]>([]);
  const [anchor, setAnchor] = useState(() => Date.now());

  useEffect(() => {
    const t = setInterval(() => setAnchor(Date.now()), HISTORY_REFRESH_MS);
    return () => clearInterval(t);
  }, []);
  // A new range asks for its history at once (state adjusted during render: no extra request on mount).
  const [anchoredRange, setAnchoredRange] = useState(range.key);
  if (anchoredRange !== range.key) {
    setAnchoredRange(range.key);
    setAnchor(Date.now());
  }

  const history = trpc.metrics.history.useQuery(
    { from: new Date(anchor - range.ms), to: new Date(anchor), step: range.step },
    { placeholderData: keepPreviousData, staleTime: HISTORY_REFRESH_MS },
  );
  // The minutes just before now, at one-minute steps, whatever the range: the tiles' trend reference
  // until the page has watched a full minute itself.
  const recent = trpc.metrics.history.useQuery(
    { from: new Date(anchor - 3 * 60_000), to: new Date(anchor), step: 1 },
    { staleTime: HISTORY_REFRESH_MS },
  );

  const keepMs = Math.max(range.ms, 2 * 60_000);
  const resolution = LIVE_RESOLUTION_MS[range.key];
  const sub = trpc.metrics.live.useSubscription(
    {},
    {
      onData: (msg) => {
        const snap = msg.data;
        setLatest(snap);
        setLive((prev) => appendLive(prev, fromSnapshot(snap), resolution, keepMs));
      },
    },
  );

  const historySamples = useMemo(
    () => (history.data ?? []).map((p) => fromPoint(p, range.step)),
    [history.data, range.step],
  );
  const samples = useMemo(() => {
    const now = latest?.at.getTime() ?? anchor;
    return joinSamples(historySamples, live, range.step).filter((s) => s.t >= now - range.ms);
  }, [historySamples, live, range, latest, anchor]);

  const minuteAgo = useMemo(() => {
    const fromLive = sampleAgo(live, 60_000);
    if (fromLive) return fromLive;
    const last = recent.data?.at(-1);
    return last ? fromPoint(last, 1) : null;
  }, [live, recent.data]);

  return { latest, samples, minuteAgo, history, sub, end: latest?.at.getTime() ?? anchor };
}

import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import type { TaskEventDto, TaskEventType } from "../../shared/task-events.js";
import { trpc } from "../trpc.js";

const bySeq = (a: TaskEventDto, b: TaskEventDto) => (BigInt(a.seq) < BigInt(b.seq) ? -1 : 1);

/**
 * Some kinds of one task's events, the way a long log is read: the newest page first (`tasks.events`), older
 * pages on demand, and new ones live (`tasks.onEvent` from the page's `through`, so nothing between the
 * read and the subscription is lost). Live events are appended; nothing already shown is fetched again.
 * `kinds` must be a stable array (a module constant): it is part of the query's key.
 */
export function useEventLog(
  taskId: string,
  kinds: readonly TaskEventType[],
  { pageSize, onLive }: { pageSize: number; onLive?: (e: TaskEventDto) => void },
) {
  const utils = trpc.useUtils();
  const input = useMemo(() => ({ taskId, kinds: [...kinds], limit: pageSize }), [taskId, kinds, pageSize]);
  // The first page is a snapshot the live stream continues: it is never refetched behind the reader's back.
  const first = trpc.tasks.events.useQuery(input, {
    staleTime: Number.POSITIVE_INFINITY,
    refetchOnWindowFocus: false,
    refetchOnReconnect: false,
  });
  const [older, setOlder] = useState<TaskEventDto[]>([]);
  const [olderDone, setOlderDone] = useState(false);
  const [loadingOlder, setLoadingOlder] = useState(false);
  const [olderError, setOlderError] = useState<unknown>(null);
  const [live, setLive] = useState<TaskEventDto[]>([]);
  const onLiveRef = useRef(onLive);
  onLiveRef.current = onLive;
  // A refetched first page (the console refetches what is shown after its socket was down) is a new
  // starting point: what was loaded around the old one may leave a gap against it, so it starts over.
  // biome-ignore lint/correctness/useExhaustiveDependencies: resets when the first page is replaced.
  useEffect(() => {
    setOlder([]);
    setOlderDone(false);
    setOlderError(null);
    setLive([]);
  }, [first.data]);

  const sub = trpc.tasks.onEvent.useSubscription(
    { taskId, kinds: input.kinds, lastEventId: first.data?.through ?? null },
    {
      enabled: first.data !== undefined,
      onData: (msg) => {
        const event = msg.data;
        setLive((prev) => (prev.length && prev[prev.length - 1]?.seq === event.seq ? prev : [...prev, event]));
        onLiveRef.current?.(event);
      },
    },
  );

  const events = useMemo(() => {
    const all = new Map<string, TaskEventDto>();
    for (const e of older) all.set(e.seq, e);
    for (const e of first.data?.items ?? []) all.set(e.seq, e);
    for (const e of live) all.set(e.seq, e);
    return [...all.values()].sort(bySeq);
  }, [older, first.data, live]);

  const hasOlder = !olderDone && (older.length ? true : (first.data?.hasMore ?? false));
  const oldest = events[0]?.seq;
  const loadOlder = useCallback(async () => {
    if (!oldest) return;
    setLoadingOlder(true);
    setOlderError(null);
    try {
      const page = await utils.tasks.events.fetch({ ...input, before: oldest });
      setOlder((prev) => [...page.items, ...prev]);
      if (!page.hasMore) setOlderDone(true);
    } catch (err) {
      setOlderError(err);
    } finally {
      setLoadingOlder(false);
    }
  }, [utils, input, oldest]);

  return { first, events, hasOlder, loadOlder, loadingOlder, olderError, sub };
}

export type EventLog = ReturnType<typeof useEventLog>;

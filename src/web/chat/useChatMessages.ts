import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import type { ChatMessageDto } from "../../shared/chat.js";
import { trpc } from "../trpc.js";

const newer = (a: ChatMessageDto, b: ChatMessageDto) => BigInt(a.version) > BigInt(b.version);

/**
 * A session's messages: pages from `chat.messages` (newest first, further back on demand) merged with
 * `chat.onMessage`, which resumes after the newest version the first page held, so nothing between
 * the fetch and the subscription is lost. A message that changes (an answer streaming in) arrives
 * again with a higher version and replaces the one shown, in place.
 */
export function useChatMessages(sessionId: string, onMessage?: (m: ChatMessageDto) => void) {
  const onMessageRef = useRef(onMessage);
  onMessageRef.current = onMessage;
  const pages = trpc.chat.messages.useInfiniteQuery(
    { sessionId },
    {
      getNextPageParam: (last) => last.nextCursor,
      retry: (count, err) => err.data?.code !== "NOT_FOUND" && err.data?.code !== "BAD_REQUEST" && count < 2,
    },
  );
  const [resumeFrom, setResumeFrom] = useState<string | null>(null);
  const [live, setLive] = useState<ReadonlyMap<string, ChatMessageDto>>(new Map());

  useEffect(() => {
    const first = pages.data?.pages[0];
    if (resumeFrom !== null || !first) return;
    let max = 0n;
    for (const m of first.items) if (BigInt(m.version) > max) max = BigInt(m.version);
    setResumeFrom(max.toString());
  }, [resumeFrom, pages.data]);

  const remember = useCallback((m: ChatMessageDto) => {
    setLive((prev) => {
      const had = prev.get(m.id);
      if (had && !newer(m, had)) return prev;
      const next = new Map(prev);
      next.set(m.id, m);
      return next;
    });
  }, []);

  const sub = trpc.chat.onMessage.useSubscription(
    { sessionId, lastEventId: resumeFrom },
    {
      enabled: resumeFrom !== null,
      onData: (msg) => {
        remember(msg.data);
        onMessageRef.current?.(msg.data);
      },
    },
  );

  const messages = useMemo(() => {
    const byId = new Map<string, ChatMessageDto>();
    // Pages come newest first; every page lists its messages oldest first.
    for (const page of pages.data?.pages ?? []) {
      for (const m of page.items) {
        const had = byId.get(m.id);
        if (!had || newer(m, had)) byId.set(m.id, m);
      }
    }
    for (const m of live.values()) {
      const had = byId.get(m.id);
      if (!had || newer(m, had)) byId.set(m.id, m);
    }
    return [...byId.values()].sort((a, b) => (BigInt(a.seq) < BigInt(b.seq) ? -1 : 1));
  }, [pages.data, live]);

  return {
    messages,
    pages,
    sub,
    remember,
  };
}

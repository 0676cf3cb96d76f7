import { useCallback, useEffect, useState } from "react";
import { trpc } from "../trpc.js";

/** How long someone counts as typing after the last signal (senders repeat it every 2 s while typing). */
const TYPING_SHOWN_MS = 4_000;

interface Typist {
  name: string;
  until: number;
}

/**
 * Who else is typing in the session, from `chat.onTyping`. Expiry uses this browser's clock from the
 * moment the signal arrived, so clock skew between machines does not matter.
 */
export function useTyping(sessionId: string) {
  const [typists, setTypists] = useState<ReadonlyMap<string, Typist>>(new Map());

  trpc.chat.onTyping.useSubscription(
    { sessionId },
    {
      onData: (e) => {
        setTypists((prev) => new Map(prev).set(e.userId, { name: e.name, until: Date.now() + TYPING_SHOWN_MS }));
      },
    },
  );

  useEffect(() => {
    if (typists.size === 0) return;
    const next = Math.min(...[...typists.values()].map((t) => t.until));
    const timer = setTimeout(
      () => {
        const now = Date.now();
        setTypists((prev) => new Map([...prev].filter(([, t]) => t.until > now)));
      },
      Math.max(next - Date.now(), 50),
    );
    return () => clearTimeout(timer);
  }, [typists]);

  /** Someone's message arrived: they stopped typing it. */
  const stopped = useCallback((userId: string) => {
    setTypists((prev) => {
      if (!prev.has(userId)) return prev;
      const next = new Map(prev);
      next.delete(userId);
      return next;
    });
  }, []);

  return { names: [...typists.values()].map((t) => t.name), stopped };
}

export function typingText(names: readonly string[]): string {
  if (names.length === 0) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return `${names.length} people are typing…`;
}

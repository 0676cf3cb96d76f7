import { useCallback, useEffect, useLayoutEffect, useRef, useSyncExternalStore } from "react";
import type { ChatMessageDto, ChatSessionDto } from "../../shared/chat.js";
import { CONNECTION_LABELS } from "../components/ConnectionBadge.js";
import { ErrorMessage } from "../components/ErrorMessage.js";
import { Time } from "../components/Time.js";
import { useHasRole, useMe } from "../components/useMe.js";
import { liveConnection, trpc } from "../trpc.js";
import { Composer } from "./Composer.js";
import { MessageItem, OutgoingItem } from "./MessageItem.js";
import { SessionHeader } from "./SessionHeader.js";
import { useChatMessages } from "./useChatMessages.js";
import { useOutbox } from "./useOutbox.js";
import { typingText, useTyping } from "./useTyping.js";

/** Within this many pixels of the end the log counts as "at the bottom" and follows new messages. */
const STICK_PX = 48;

/** One session: its messages (older ones on scrolling up), who is typing, and the composer. */
export function SessionView({ session }: { session: ChatSessionDto }) {
  const me = useMe();
  const isOperator = useHasRole("operator");
  const canWrite = isOperator && !session.endedAt;
  const typing = useTyping(session.id);
  const utils = trpc.useUtils();
  const { messages, pages, sub, remember } = useChatMessages(session.id, (m: ChatMessageDto) => {
    typing.stopped(m.author);
    // Renaming or ending the session, by anyone, is announced by a system message.
    if (m.role === "system") {
      void utils.chat.sessions.get.invalidate({ sessionId: session.id });
      void utils.chat.sessions.list.invalidate();
    }
  });
  const outbox = useOutbox(session.id, messages, remember);
  const typingMutation = trpc.chat.typing.useMutation();
  const conn = useSyncExternalStore(liveConnection.subscribe, liveConnection.get);

  const logRef = useRef<HTMLDivElement>(null);
  const sentinelRef = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);
  const keepPosition = useRef<{ height: number; top: number } | null>(null);
  const canLoadOlder = useRef(false);
  canLoadOlder.current = Boolean(pages.hasNextPage) && !pages.isFetching;

  const loadOlder = useCallback(() => {
    const el = logRef.current;
    if (!el || !canLoadOlder.current) return;
    canLoadOlder.current = false;
    keepPosition.current = { height: el.scrollHeight, top: el.scrollTop };
    void pages.fetchNextPage();
  }, [pages]);

  // Older messages go above what is on screen: keep what the reader looks at where it is.
  // New ones at the end: follow them if the reader was at the bottom.
  // biome-ignore lint/correctness/useExhaustiveDependencies: runs after every change of what the log shows.
  useLayoutEffect(() => {
    const el = logRef.current;
    if (!el) return;
    if (keepPosition.current && !pages.isFetchingNextPage) {
      el.scrollTop = el.scrollHeight - keepPosition.current.height + keepPosition.current.top;
      keepPosition.current = null;
    } else if (atBottom.current) {
      el.scrollTop = el.scrollHeight;
    }
  }, [messages, outbox.outgoing, typing.names.length, pages.isFetchingNextPage]);

  // Reaching the top of the log pages further back.
  useEffect(() => {
    const root = logRef.current;
    const sentinel = sentinelRef.current;
    if (!root || !sentinel) return;
    const io = new IntersectionObserver(
      (entries) => {
        if (entries.some((e) => e.isIntersecting)) loadOlder();
      },
      { root, rootMargin: "200px 0px 0px 0px" },
    );
    io.observe(sentinel);
    return () => io.disconnect();
  }, [loadOlder]);

  const send = (content: string) => {
    atBottom.current = true;
    outbox.submit(content);
  };

  let state: { tone: string; text: string };
  if (sub.status === "error") state = { tone: "bad", text: "Live messages stopped." };
  else if (conn.status !== "connected" || sub.status === "connecting")
    state = {
      tone: "warn",
      text:
        conn.status === "connected"
          ? "Connecting…"
          : `${CONNECTION_LABELS[conn.status]}: new messages arrive once the connection is back.`,
    };
  else if (sub.status === "pending") state = { tone: "ok", text: "Live" };
  else state = { tone: "unknown", text: "Loading…" };

  const typingNow = typingText(typing.names);

  return (
    <section className="chat-session" aria-label={`Chat session ${session.title}`}>
      <SessionHeader session={session} canEdit={isOperator} state={state} />
      {sub.status === "error" ? (
        <ErrorMessage title="Live messages stopped:" error={sub.error}>
          <button type="button" className="btn btn-small" onClick={() => sub.reset()}>
            Reconnect
          </button>
        </ErrorMessage>
      ) : null}
      {pages.error ? <ErrorMessage title="Could not load the messages:" error={pages.error} /> : null}
      <div
        ref={logRef}
        className="chat-log"
        onScroll={(e) => {
          const el = e.currentTarget;
          atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < STICK_PX;
        }}
      >
        <div ref={sentinelRef} className="chat-older">
          {pages.hasNextPage ? (
            <button type="button" className="btn btn-small" disabled={pages.isFetching} onClick={loadOlder}>
              {pages.isFetchingNextPage ? "Loading earlier messages…" : "Load earlier messages"}
            </button>
          ) : pages.data ? (
            <span className="muted small">
              Start of the session, <Time value={session.createdAt} />
            </span>
          ) : null}
        </div>
        {pages.isPending ? <p className="loading">Loading messages…</p> : null}
        <ol className="chat-messages" aria-label="Messages">
          {messages.map((m) => (
            <MessageItem key={m.id} message={m} mine={m.author === me?.username} />
          ))}
          {outbox.outgoing.map((e) => (
            <OutgoingItem
              key={e.clientId}
              entry={e}
              author={me?.displayName ?? "You"}
              onRetry={() => outbox.retry(e.clientId)}
              onDiscard={() => outbox.discard(e.clientId)}
            />
          ))}
        </ol>
      </div>
      <p className="chat-typing muted small" aria-live="polite">
        {typingNow}
      </p>
      {canWrite ? (
        <Composer
          onSend={send}
          onTyping={() => typingMutation.mutate({ sessionId: session.id }, { onError: () => undefined })}
        />
      ) : session.endedAt ? (
        <p className="notice notice-info">
          This session was ended{session.endedBy ? ` by ${session.endedBy}` : ""} <Time value={session.endedAt} />. It
          stays readable; start a new session to go on.
        </p>
      ) : (
        <p className="notice notice-info">You can read this session; writing needs the operator role.</p>
      )}
    </section>
  );
}

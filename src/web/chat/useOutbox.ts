import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import type { ChatMessageDto } from "../../shared/chat.js";
import { liveConnection, trpc } from "../trpc.js";

export interface OutgoingMessage {
  clientId: string;
  content: string;
  status: "pending" | "failed";
  error: string | null;
  /** The send never reached the server: it is sent again, by itself, once the live connection is back. */
  unreachable: boolean;
}

/**
 * A new clientId: 24 random bytes, hex. `crypto.getRandomValues` works on plain-HTTP origins too,
 * where `crypto.randomUUID` is missing.
 */
export function newClientId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Messages this page sent that the server has not confirmed yet. Each keeps its clientId, so a retry
 * after a failure or a lost answer is the same message to the server and is never stored twice.
 * An entry leaves once a message with its clientId is among the session's messages.
 */
export function useOutbox(sessionId: string, messages: readonly ChatMessageDto[], onSent: (m: ChatMessageDto) => void) {
  const [entries, setEntries] = useState<readonly OutgoingMessage[]>([]);
  // The plain client, not useMutation: several sends may be in flight, and each needs its own outcome.
  const client = trpc.useUtils().client;
  const onSentRef = useRef(onSent);
  onSentRef.current = onSent;

  const put = useCallback((clientId: string, patch: Partial<OutgoingMessage> | null) => {
    setEntries((prev) =>
      patch === null
        ? prev.filter((e) => e.clientId !== clientId)
        : prev.map((e) => (e.clientId === clientId ? { ...e, ...patch } : e)),
    );
  }, []);

  const deliver = useCallback(
    (clientId: string, content: string) => {
      client.chat.send.mutate({ sessionId, content, clientId }).then(
        (r) => onSentRef.current(r.message),
        (err: unknown) => put(clientId, { status: "failed", error: failureText(err), unreachable: !answered(err) }),
      );
    },
    [client, sessionId, put],
  );

  const submit = useCallback(
    (content: string) => {
      const clientId = newClientId();
      setEntries((prev) => [...prev, { clientId, content, status: "pending", error: null, unreachable: false }]);
      deliver(clientId, content);
    },
    [deliver],
  );

  const retry = useCallback(
    (clientId: string) => {
      const entry = entries.find((e) => e.clientId === clientId);
      if (!entry) return;
      put(clientId, { status: "pending", error: null, unreachable: false });
      deliver(clientId, entry.content);
    },
    [entries, deliver, put],
  );

  // Back online: what failed only for want of a connection goes again (same clientId, so never twice).
  const entriesRef = useRef(entries);
  entriesRef.current = entries;
  useEffect(() => {
    let last = liveConnection.get().status;
    return liveConnection.subscribe(() => {
      const now = liveConnection.get().status;
      if (now === "connected" && last !== "connected") {
        for (const e of entriesRef.current.filter((x) => x.status === "failed" && x.unreachable)) {
          put(e.clientId, { status: "pending", error: null, unreachable: false });
          deliver(e.clientId, e.content);
        }
      }
      last = now;
    });
  }, [deliver, put]);

  const discard = useCallback((clientId: string) => put(clientId, null), [put]);

  const stored = useMemo(() => new Set(messages.map((m) => m.clientId).filter((c) => c !== null)), [messages]);
  const outgoing = useMemo(() => entries.filter((e) => !stored.has(e.clientId)), [entries, stored]);

  return { outgoing, submit, retry, discard };
}

/** The server's reason when it answered; otherwise say that it could not be reached, which a retry may fix. */
function failureText(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return answered(err) ? message : "Could not reach the server; it is sent again once the connection is back.";
}

/** Whether the server answered (with a refusal), as opposed to the request never reaching it. */
function answered(err: unknown): boolean {
  return typeof err === "object" && err !== null && "data" in err && Boolean((err as { data?: unknown }).data);
}

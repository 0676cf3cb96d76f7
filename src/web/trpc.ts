import { QueryClient } from "@tanstack/react-query";
import { createWSClient, httpBatchLink, splitLink, wsLink } from "@trpc/client";
import { createTRPCReact } from "@trpc/react-query";
import type { inferRouterOutputs } from "@trpc/server";
import superjson from "superjson";
import type { AppRouter } from "../server/router.js";

export const trpc = createTRPCReact<AppRouter>();
export type RouterOutputs = inferRouterOutputs<AppRouter>;

/** Retries of a broken WebSocket after which the console calls itself offline rather than reconnecting. */
const OFFLINE_AFTER_ATTEMPTS = 3;

export type LiveConnection = "connecting" | "connected" | "reconnecting" | "offline";

interface LiveConnectionState {
  status: LiveConnection;
  /** Why the socket is down, for the tooltip. */
  detail: string | null;
}

let reconnectAttempt = 0;
let connectionSnapshot: LiveConnectionState = { status: "connecting", detail: null };
const connectionListeners = new Set<() => void>();

function wsUrl(): string {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/trpc`;
}

export const wsClient = createWSClient({
  url: wsUrl,
  // Capped backoff: after a server restart the console is live again within seconds.
  retryDelayMs: (attempt) => {
    reconnectAttempt = attempt + 1;
    updateConnection();
    return Math.min(500 * 2 ** attempt, 5_000);
  },
  onOpen: () => {
    reconnectAttempt = 0;
  },
  // Detects a half-open socket (laptop sleep, dropped network) that the browser would not report.
  keepAlive: { enabled: true, intervalMs: 15_000, pongTimeoutMs: 5_000 },
});

let everConnected = false;

function updateConnection() {
  const s = wsClient.connectionState.get();
  let next: LiveConnectionState;
  if (s.state === "pending") {
    everConnected = true;
    next = { status: "connected", detail: null };
  } else if (s.state === "idle") {
    next = { status: "offline", detail: "The live connection is closed." };
  } else {
    const offline = !navigator.onLine || reconnectAttempt >= OFFLINE_AFTER_ATTEMPTS;
    const detail = !navigator.onLine
      ? "The browser reports no network."
      : s.error
        ? `${s.error.message}; retry ${reconnectAttempt}`
        : null;
    next = {
      status: offline ? "offline" : s.error || everConnected ? "reconnecting" : "connecting",
      detail,
    };
  }
  if (next.status === connectionSnapshot.status && next.detail === connectionSnapshot.detail) return;
  connectionSnapshot = next;
  for (const l of connectionListeners) l();
}

wsClient.connectionState.subscribe({ next: updateConnection });
window.addEventListener("online", updateConnection);
window.addEventListener("offline", updateConnection);

export const liveConnection = {
  subscribe(listener: () => void): () => void {
    connectionListeners.add(listener);
    return () => connectionListeners.delete(listener);
  },
  get: (): LiveConnectionState => connectionSnapshot,
};

export const queryClient = new QueryClient({
  defaultOptions: {
    queries: { staleTime: 5_000, refetchOnWindowFocus: false, retry: 1 },
  },
});

// A socket that comes back may have missed events that are not tracked by a subscription yet: refetch what is shown.
let previousStatus: LiveConnection = connectionSnapshot.status;
liveConnection.subscribe(() => {
  const wasDown = previousStatus === "reconnecting" || previousStatus === "offline";
  previousStatus = connectionSnapshot.status;
  if (wasDown && connectionSnapshot.status === "connected") void queryClient.invalidateQueries();
});

export const trpcClient = trpc.createClient({
  links: [
    splitLink({
      condition: (op) => op.type === "subscription",
      true: wsLink({ client: wsClient, transformer: superjson }),
      false: httpBatchLink({ url: "/trpc", transformer: superjson }),
    }),
  ],
});

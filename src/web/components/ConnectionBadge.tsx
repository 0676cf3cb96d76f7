import { useSyncExternalStore } from "react";
import { type LiveConnection, liveConnection } from "../trpc.js";

/** The one name of each connection state, wherever the console shows it. */
export const CONNECTION_LABELS: Record<LiveConnection, string> = {
  connecting: "Connecting",
  connected: "Live",
  reconnecting: "Reconnecting",
  offline: "Offline",
};

const TONES: Record<LiveConnection, string> = {
  connecting: "unknown",
  connected: "ok",
  reconnecting: "warn",
  offline: "bad",
};

/** The state of the WebSocket that carries live updates; updates stop while it is not "Live". */
export function ConnectionBadge() {
  const conn = useSyncExternalStore(liveConnection.subscribe, liveConnection.get);
  const explanation =
    conn.status === "connected"
      ? "Live updates are on."
      : `Live updates are paused until the connection is back.${conn.detail ? ` ${conn.detail}` : ""}`;
  return (
    <span
      className="status-pill has-tip"
      data-tone={TONES[conn.status]}
      data-connection={conn.status}
      // biome-ignore lint/a11y/noNoninteractiveTabindex: focusable so keyboard users can open the tooltip that says why.
      tabIndex={0}
      aria-describedby="connection-tip"
    >
      <span className="dot" aria-hidden="true" />
      <span role="status">
        <span className="visually-hidden">Live connection: </span>
        {CONNECTION_LABELS[conn.status]}
      </span>
      <span className="tip" role="tooltip" id="connection-tip">
        {explanation}
      </span>
    </span>
  );
}

import type { EventEmitter } from "node:events";
import type { Logger } from "../logger.js";
import type { LiveBus } from "./live-bus.js";

const EVENT = "credentials-changed";

/**
 * Relays the auth service's "credentials-changed" between processes: a sign-out, token revocation or
 * user change in one process makes every process's socket guard re-check its open WebSockets at
 * once, instead of at its next periodic re-check. Returns a function that stops relaying.
 */
export function relayCredentialChanges(bus: LiveBus, changes: EventEmitter, log: Logger): () => void {
  let relaying = false;
  const publish = () => {
    if (relaying) return;
    bus
      .publishCredentialsChanged()
      .catch((err: unknown) =>
        log.warn({ err }, "credentials changed, but other processes could not be told; they re-check within 15 s"),
      );
  };
  changes.on(EVENT, publish);
  const off = bus.onCredentialsChanged(() => {
    // Emitting runs the listeners synchronously: the flag keeps `publish` from sending it back out.
    relaying = true;
    try {
      changes.emit(EVENT);
    } finally {
      relaying = false;
    }
  });
  return () => {
    changes.off(EVENT, publish);
    off();
  };
}

import type { WebSocket } from "ws";
import type { Actor } from "../../shared/roles.js";
import type { AuthService, Credentials, ResolvedCaller } from "./service.js";

/** Close code a client sees when its session ended or its token was revoked; it reconnects as anonymous. */
export const CREDENTIALS_ENDED_CLOSE_CODE = 4401;

/**
 * A WebSocket's actor is resolved once, when it connects; this closes the socket (and so its
 * subscriptions) as soon as its credentials stop resolving: at once for a sign-out, revocation or user
 * change in this process, and within `recheckMs` for one made by another process.
 */
export class SocketGuard {
  private readonly sockets = new Map<
    WebSocket,
    { credentials: Credentials; actor: Actor; passwordChangeRequired: boolean }
  >();
  private readonly timer: NodeJS.Timeout;
  private readonly onChange = () => void this.recheck();
  private running: Promise<void> | null = null;
  /** A pass that has not started yet: it will see any change made before it starts. */
  private queued: Promise<void> | null = null;

  constructor(
    private readonly auth: AuthService,
    recheckMs = 15_000,
  ) {
    auth.changes.on("credentials-changed", this.onChange);
    this.timer = setInterval(this.onChange, recheckMs);
    this.timer.unref();
  }

  /**
   * `actor` is what the connection was resolved to; a changed role, or a password change that lifts
   * (or an admin reset that sets) "must change password", also closes it, so it reconnects as it now is.
   */
  watch(ws: WebSocket, credentials: Credentials, actor: Actor, passwordChangeRequired = false): void {
    this.sockets.set(ws, { credentials, actor, passwordChangeRequired });
    ws.once("close", () => this.sockets.delete(ws));
  }

  get watched(): number {
    return this.sockets.size;
  }

  /**
   * Re-resolves every watched socket; one pass at a time, and a change during a pass runs another.
   * Within a pass each distinct set of credentials is resolved once, however many sockets carry it
   * (one query per pass rather than one per connection for thousands of sockets on one token), and
   * calls while a pass is waiting to start share that pass.
   */
  recheck(): Promise<void> {
    if (this.queued) return this.queued;
    const pass = (this.running ?? Promise.resolve()).then(async () => {
      this.queued = null;
      const resolved = new Map<string, Promise<ResolvedCaller | null | undefined>>();
      for (const [ws, watched] of [...this.sockets]) {
        const key = credentialsKey(watched.credentials);
        let resolving = resolved.get(key);
        if (!resolving) {
          resolving = this.auth.resolveCaller(watched.credentials).catch(() => undefined);
          resolved.set(key, resolving);
        }
        const caller = await resolving;
        // undefined: the database did not answer; keep the socket rather than drop everyone on a blip.
        if (
          caller === null ||
          (caller &&
            (caller.actor.role !== watched.actor.role ||
              caller.passwordChangeRequired !== watched.passwordChangeRequired))
        ) {
          this.sockets.delete(ws);
          ws.close(CREDENTIALS_ENDED_CLOSE_CODE, "Signed out, or the credentials or role changed");
        }
      }
    });
    this.queued = pass;
    this.running = pass;
    return pass;
  }

  stop(): void {
    clearInterval(this.timer);
    this.auth.changes.off("credentials-changed", this.onChange);
    this.sockets.clear();
  }
}

/** What resolveActor reads from credentials: sockets with the same key resolve to the same actor. */
function credentialsKey(c: Credentials): string {
  return JSON.stringify([c.authorizationHeader ?? null, c.connectionParams?.token ?? null, c.cookieHeader ?? null]);
}

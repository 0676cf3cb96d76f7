import { randomUUID } from "node:crypto";
import { z } from "zod";
import type { Database } from "../db/database.js";
import type { Logger } from "../logger.js";

/** The one notification channel; the migration `cluster_notify` sends on it from triggers too. */
export const LIVE_CHANNEL = "agency_live";

/** Committed rows of a tailed table: the highest position written (sent by a trigger on commit). */
const rowsSchema = z.object({ k: z.enum(["task_events", "chat"]), p: z.string().regex(/^\d+$/) });
/** Someone is typing in a chat session: ephemeral, carried whole in the payload. */
const typingSchema = z.object({
  k: z.literal("typing"),
  sessionId: z.string().min(1).max(64),
  userId: z.string().min(1).max(128),
  name: z.string().max(200),
  at: z.number().int(),
});
/** A session ended, a token was revoked or a user changed somewhere: open sockets re-check their credentials. */
const credentialsSchema = z.object({ k: z.literal("credentials"), origin: z.string().max(64) });
const messageSchema = z.intersection(
  z.object({ s: z.string() }),
  z.union([rowsSchema, typingSchema, credentialsSchema]),
);

export type RowsKind = z.infer<typeof rowsSchema>["k"];
export type TypingNotice = Omit<z.infer<typeof typingSchema>, "k">;

/**
 * Fan-out between the server processes sharing one database, over Postgres LISTEN/NOTIFY.
 * Writers do not call it for rows: triggers notify in the writing transaction, so the message is
 * delivered on commit and in commit order. Notices for other schemas on the same server are ignored.
 */
export class LiveBus {
  private readonly rowListeners = new Map<RowsKind, Set<(position: bigint) => void>>();
  private readonly typingListeners = new Set<(t: TypingNotice) => void>();
  private readonly connectListeners = new Set<() => void>();
  private readonly credentialsListeners = new Set<() => void>();
  /** Tells this process's own notices from the others'. */
  private readonly origin = randomUUID();
  private unlisten: (() => Promise<void>) | null = null;

  constructor(
    private readonly db: Database,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    if (this.unlisten) return;
    this.unlisten = await this.db.listen(LIVE_CHANNEL, {
      onNotify: (payload) => this.receive(payload),
      onConnect: () => {
        for (const l of this.connectListeners) l();
      },
    });
  }

  async stop(): Promise<void> {
    const unlisten = this.unlisten;
    this.unlisten = null;
    await unlisten?.();
  }

  /** Rows of `kind` committed up to `position` (by any process, this one included). */
  onRows(kind: RowsKind, fn: (position: bigint) => void): () => void {
    let set = this.rowListeners.get(kind);
    if (!set) {
      set = new Set();
      this.rowListeners.set(kind, set);
    }
    set.add(fn);
    return () => set.delete(fn);
  }

  /** Called on every (re)connection of the LISTEN connection: what was sent while it was down is lost. */
  onConnect(fn: () => void): () => void {
    this.connectListeners.add(fn);
    return () => this.connectListeners.delete(fn);
  }

  onTyping(fn: (t: TypingNotice) => void): () => void {
    this.typingListeners.add(fn);
    return () => this.typingListeners.delete(fn);
  }

  /** Credentials changed in another process (this process's own changes are not echoed back). */
  onCredentialsChanged(fn: () => void): () => void {
    this.credentialsListeners.add(fn);
    return () => this.credentialsListeners.delete(fn);
  }

  /** Tells the other processes that credentials changed here. */
  async publishCredentialsChanged(): Promise<void> {
    const payload = JSON.stringify({ s: this.db.schema, k: "credentials", origin: this.origin });
    await this.db.query("SELECT pg_notify($1, $2)", [LIVE_CHANNEL, payload]);
  }

  /** Sends a typing notice to every process, this one included. */
  async publishTyping(t: TypingNotice): Promise<void> {
    const payload = JSON.stringify({ s: this.db.schema, k: "typing", ...t });
    await this.db.query("SELECT pg_notify($1, $2)", [LIVE_CHANNEL, payload]);
  }

  private receive(payload: string): void {
    let json: unknown;
    try {
      json = JSON.parse(payload);
    } catch {
      this.log.warn({ payload: payload.slice(0, 200) }, "live bus: a notification that is not JSON was ignored");
      return;
    }
    const parsed = messageSchema.safeParse(json);
    if (!parsed.success) {
      this.log.warn({ payload: payload.slice(0, 200) }, "live bus: a notification of unknown shape was ignored");
      return;
    }
    const msg = parsed.data;
    if (msg.s !== this.db.schema) return;
    if (msg.k === "credentials") {
      if (msg.origin === this.origin) return;
      for (const l of this.credentialsListeners) l();
      return;
    }
    if (msg.k === "typing") {
      const { s: _s, k: _k, ...notice } = msg;
      for (const l of this.typingListeners) l(notice);
      return;
    }
    const position = BigInt(msg.p);
    for (const l of this.rowListeners.get(msg.k) ?? []) l(position);
  }
}

import pg from "pg";
import { backoffDelayMs } from "../execution/backoff.js";

export interface ListenHandlers {
  onNotify(payload: string): void;
  /** After every (re)connection, once LISTEN is in place: notifications sent meanwhile were lost. */
  onConnect?(): void;
}

export interface PgListenerOptions {
  connectionString: string;
  /** Shown in pg_stat_activity, so an operator can tell the LISTEN connections apart. */
  applicationName?: string;
  /** Reports a lost or failed connection; the listener keeps reconnecting on its own. */
  onError(err: unknown, retryInMs: number): void;
  /** After every successful (re)connection, once LISTEN is in place. */
  onConnected?(): void;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/**
 * One dedicated connection per process for LISTEN (a pooled connection would drop its LISTENs when
 * returned). It reconnects with capped exponential backoff, and tells its handlers when it is back
 * so they can read what they missed.
 */
export class PgListener {
  private client: pg.Client | null = null;
  private readonly channels = new Map<string, Set<ListenHandlers>>();
  private closed = false;
  private failures = 0;
  private retry: NodeJS.Timeout | null = null;
  private connecting: Promise<void> | null = null;

  constructor(private readonly opts: PgListenerOptions) {}

  /** Starts listening on `channel`; the returned function stops it. Resolves once LISTEN is in place (or is being retried). */
  async listen(channel: string, handlers: ListenHandlers): Promise<() => Promise<void>> {
    let set = this.channels.get(channel);
    const first = !set;
    if (!set) {
      set = new Set();
      this.channels.set(channel, set);
    }
    set.add(handlers);
    if (!this.client && !this.retry) {
      this.connecting ??= this.connect().finally(() => {
        this.connecting = null;
      });
      await this.connecting;
    } else if (this.client && first) {
      await this.client.query(`LISTEN ${quoteIdent(channel)}`);
      handlers.onConnect?.();
    } else if (this.client) {
      handlers.onConnect?.();
    }
    return async () => {
      set.delete(handlers);
      if (set.size === 0 && this.channels.get(channel) === set) {
        this.channels.delete(channel);
        await this.client?.query(`UNLISTEN ${quoteIdent(channel)}`).catch(() => undefined);
      }
    };
  }

  get connected(): boolean {
    return this.client !== null;
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client({
      connectionString: this.opts.connectionString,
      keepAlive: true,
      application_name: this.opts.applicationName,
    });
    client.on("error", (err) => this.lost(client, err));
    client.on("end", () => this.lost(client, new Error("the LISTEN connection ended")));
    client.on("notification", (msg) => {
      for (const h of this.channels.get(msg.channel) ?? []) h.onNotify(msg.payload ?? "");
    });
    try {
      await client.connect();
      for (const channel of this.channels.keys()) await client.query(`LISTEN ${quoteIdent(channel)}`);
    } catch (err) {
      client.removeAllListeners();
      client.on("error", () => undefined);
      await client.end().catch(() => undefined);
      this.scheduleRetry(err);
      return;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.failures = 0;
    this.opts.onConnected?.();
    for (const set of this.channels.values()) for (const h of set) h.onConnect?.();
  }

  private lost(client: pg.Client, err: unknown): void {
    if (this.client !== client) return;
    this.client = null;
    client.removeAllListeners();
    client.on("error", () => undefined);
    void client.end().catch(() => undefined);
    if (!this.closed) this.scheduleRetry(err);
  }

  private scheduleRetry(err: unknown): void {
    if (this.closed || this.retry) return;
    this.failures++;
    const delay = backoffDelayMs(this.failures, {
      baseMs: this.opts.minBackoffMs ?? 250,
      maxMs: this.opts.maxBackoffMs ?? 30_000,
    });
    this.opts.onError(err, delay);
    this.retry = setTimeout(() => {
      this.retry = null;
      this.connecting ??= this.connect().finally(() => {
        this.connecting = null;
      });
    }, delay);
    this.retry.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    await this.connecting;
    const client = this.client;
    this.client = null;
    if (client) {
      client.removeAllListeners();
      client.on("error", () => undefined);
      await client.end().catch(() => undefined);
    }
  }
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

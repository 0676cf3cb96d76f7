import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { toStorableText } from "../../shared/text.js";
import type { Database } from "../db/database.js";
import { backoffDelayMs, parseRetryAfter } from "../execution/backoff.js";
import type { SecretBox } from "../keystore/secrets.js";
import type { Logger } from "../logger.js";
import { assertAllowedWorkerUrl } from "../workers/allowlist.js";
import {
  type ClaimedDelivery,
  claimDue,
  disableEndpoint,
  fanOutTaskEvents,
  recordTry,
  releaseClaim,
  type TryRecord,
} from "./outbox.js";
import { slackMessage } from "./payload.js";
import { openWebhookSecret, webhookHeaders } from "./signing.js";

/** What is kept of a receiver's answer: enough to read an error page's message. */
export const RESPONSE_EXCERPT_BYTES = 4096;
/** Deliveries sent at once by one process. */
const BATCH = 10;
/** The longest a `Retry-After` may push a try back. */
const MAX_RETRY_AFTER_MS = 24 * 3_600_000;

export type DeliveryOutcome = "delivered" | "retrying" | "failed" | "disabled";

export interface DelivererOptions {
  timeoutMs: number;
  maxAttempts: number;
  retryBaseDelayMs: number;
  retryMaxDelayMs: number;
  pollIntervalMs: number;
  allowedHosts: readonly string[];
  publicUrl: string | undefined;
}

interface Answer {
  status: number | null;
  body: string | null;
  retryAfterMs: number | undefined;
  error: string | null;
  durationMs: number;
  /** Not sent at all: the URL is not allowed, or the secret cannot be opened. Not retried. */
  refused?: boolean;
}

/** Reads at most `max` bytes of a body, then lets go of the rest: a receiver cannot make the server read forever. */
async function readBounded(res: Response, max: number): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < max) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  const bytes = Buffer.concat(chunks).subarray(0, max);
  return toStorableText(new TextDecoder("utf-8", { fatal: false }).decode(bytes));
}

/**
 * The delivery loop of one process: turns new task events into deliveries, claims due deliveries
 * (SKIP LOCKED, under a lease) and sends them, on a timer and whenever woken. A try's outcome is
 * written fenced on the lease; one this process abandons while stopping goes back to the queue.
 */
export class WebhookDeliverer {
  /** This process's lease identity: host, pid and a per-boot nonce. */
  readonly owner = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private active = false;
  private abort = new AbortController();

  constructor(
    private readonly db: Database,
    private readonly box: SecretBox,
    private readonly log: Logger,
    private readonly opts: DelivererOptions,
    private readonly counted: (outcome: DeliveryOutcome) => void,
  ) {}

  private get leaseMs(): number {
    return this.opts.timeoutMs + 10_000;
  }

  start(): void {
    if (this.active) return;
    this.active = true;
    this.abort = new AbortController();
    this.timer = setInterval(() => this.wake(), this.opts.pollIntervalMs);
    this.timer.unref();
    this.wake();
  }

  async stop(): Promise<void> {
    this.active = false;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.abort.abort(new Error("The server is stopping."));
    while (this.running) await this.running;
  }

  /** Looks for work now; a call during a pass makes it run once more. */
  wake(): void {
    if (!this.active) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.pass();
        } while (this.again && this.active);
      } catch (err) {
        this.log.error({ err }, "webhook delivery pass failed");
      } finally {
        this.running = null;
      }
    })();
  }

  private async pass(): Promise<void> {
    await fanOutTaskEvents(this.db, this.opts.publicUrl);
    while (this.active) {
      const claimed = await claimDue(this.db, this.owner, this.leaseMs, BATCH);
      await Promise.all(
        claimed.map((d) =>
          this.deliver(d).catch((err: unknown) =>
            // The row keeps its lease and is taken again once it expires.
            this.log.error({ err, delivery: d.id }, "recording a webhook delivery failed"),
          ),
        ),
      );
      if (claimed.length < BATCH) return;
    }
  }

  private async deliver(d: ClaimedDelivery): Promise<void> {
    const answer = await this.send(d);
    if (!this.active && answer.error && this.abort.signal.aborted) {
      await releaseClaim(this.db, d.id, this.owner);
      return;
    }
    const record: TryRecord = {
      responseStatus: answer.status,
      responseBody: answer.body,
      error: answer.error,
      durationMs: answer.durationMs,
    };
    const s = answer.status;
    let outcome: DeliveryOutcome;
    if (s !== null && s >= 200 && s < 300) {
      outcome = "delivered";
      await recordTry(this.db, d.id, this.owner, record, { status: "delivered" });
    } else if (s === 410) {
      outcome = "disabled";
      const reason = `The endpoint answered 410 Gone at ${new Date().toISOString()}; enable it again once it is back.`;
      await recordTry(
        this.db,
        d.id,
        this.owner,
        { ...record, error: "410 Gone: the endpoint was disabled." },
        {
          status: "failed",
        },
      );
      await disableEndpoint(this.db, d.endpointId, reason);
      this.log.warn({ endpoint: d.endpointId }, "webhook endpoint answered 410 Gone: disabled");
    } else {
      const retryable = s === null ? !answer.refused : s === 429 || s >= 500;
      if (retryable && d.attempts < this.opts.maxAttempts) {
        outcome = "retrying";
        const backoff = backoffDelayMs(d.attempts, {
          baseMs: this.opts.retryBaseDelayMs,
          maxMs: this.opts.retryMaxDelayMs,
        });
        const delayMs = Math.max(backoff, Math.min(answer.retryAfterMs ?? 0, MAX_RETRY_AFTER_MS));
        await recordTry(this.db, d.id, this.owner, record, { status: "pending", delayMs });
      } else {
        outcome = "failed";
        const why = retryable ? `gave up after ${d.attempts} tries` : null;
        await recordTry(
          this.db,
          d.id,
          this.owner,
          { ...record, error: [record.error, why].filter(Boolean).join("; ") || null },
          { status: "failed" },
        );
      }
    }
    this.counted(outcome);
  }

  /** One signed POST with a deadline over the whole exchange; the answer's body is read no further than the excerpt. */
  private async send(d: ClaimedDelivery): Promise<Answer> {
    const started = performance.now();
    const took = () => Math.round(performance.now() - started);
    let url: URL;
    let secret: string;
    try {
      // Checked again at every send: a row changed behind the API's back still cannot make the server call elsewhere.
      url = assertAllowedWorkerUrl(d.url, this.opts.allowedHosts, "Webhook");
      secret = openWebhookSecret(this.box, d.secret);
    } catch (err) {
      return {
        status: null,
        body: null,
        retryAfterMs: undefined,
        error: (err as Error).message,
        durationMs: took(),
        refused: true,
      };
    }
    const body = JSON.stringify(d.format === "slack" ? slackMessage(d.payload) : d.payload);
    const timestamp = Math.floor(Date.now() / 1000);
    // A timer of our own rather than AbortSignal.timeout inside AbortSignal.any: Node 20 may collect that
    // timeout signal while the request waits, and a receiver that never answers would then hold the try forever.
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new Error(`No answer within ${this.opts.timeoutMs} ms.`));
    }, this.opts.timeoutMs);
    const onStop = () => controller.abort(this.abort.signal.reason);
    this.abort.signal.addEventListener("abort", onStop, { once: true });
    const signal = controller.signal;
    try {
      const res = await fetch(url, {
        method: "POST",
        redirect: "manual",
        signal,
        headers: {
          "content-type": "application/json",
          "user-agent": "agency-webhooks/1",
          ...webhookHeaders(secret, d.eventId, timestamp, body),
        },
        body,
      });
      const text = await readBounded(res, RESPONSE_EXCERPT_BYTES);
      const redirect = res.status >= 300 && res.status < 400;
      return {
        status: res.status,
        body: text || null,
        retryAfterMs: parseRetryAfter(res.headers.get("retry-after")),
        error: redirect ? `Redirects are not followed (${res.headers.get("location") ?? "no Location"}).` : null,
        durationMs: took(),
      };
    } catch (err) {
      const message = timedOut
        ? `No answer within ${this.opts.timeoutMs} ms.`
        : `${(err as Error).message}${(err as { cause?: Error }).cause ? `: ${(err as { cause: Error }).cause.message}` : ""}`;
      return { status: null, body: null, retryAfterMs: undefined, error: message.slice(0, 1000), durationMs: took() };
    } finally {
      clearTimeout(timer);
      this.abort.signal.removeEventListener("abort", onStop);
    }
  }
}

import { z } from "zod";

const ms = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** Webhook delivery settings; spread into the server's environment schema (config.ts). */
export const webhookEnvShape = {
  /** One delivery (connect, answer and the first 4 KiB of its body) must finish within this, or it is retried. */
  WEBHOOK_TIMEOUT_MS: ms(100, 120_000).default(10_000),
  /** Tries of one delivery, the first included, before it is marked failed. */
  WEBHOOK_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(50).default(8),
  /**
   * Backoff between tries (the codebase's one formula, execution/backoff.ts): retry n waits
   * min(max, base·2^(n-1)) times a random factor in [1, 2); never sooner than a `Retry-After` asks.
   */
  WEBHOOK_RETRY_BASE_DELAY_MS: ms(0, 3_600_000).default(5_000),
  WEBHOOK_RETRY_MAX_DELAY_MS: ms(0, 24 * 3_600_000).default(3_600_000),
  /** How often each process looks for due deliveries and for task events not yet turned into deliveries. */
  WEBHOOK_POLL_INTERVAL_MS: ms(20, 60_000).default(1_000),
};

import { createHmac, randomBytes } from "node:crypto";
import { isSealed, type SecretBox } from "../keystore/secrets.js";

/** Authenticated context of a sealed webhook secret; keys:rotate (keystore/rotate.ts) re-seals it under this name. */
export const WEBHOOK_SECRET_CONTEXT = "webhooks.secret";

const SECRET_PREFIX = "whsec_";

/** A new signing secret in the Standard Webhooks form: `whsec_` and 32 random bytes in base64. */
export function generateWebhookSecret(): string {
  return `${SECRET_PREFIX}${randomBytes(32).toString("base64")}`;
}

/** The one place a webhook secret is turned into what is stored: sealed like worker tokens (AES-256-GCM). */
export function sealWebhookSecret(box: SecretBox, secret: string): string {
  return box.seal(secret, WEBHOOK_SECRET_CONTEXT);
}

export function openWebhookSecret(box: SecretBox, stored: string): string {
  if (!isSealed(stored)) throw new Error("A webhook secret is stored unsealed; rotate it.");
  return box.open(stored, WEBHOOK_SECRET_CONTEXT);
}

function keyOf(secret: string): Buffer {
  return Buffer.from(secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret, "base64");
}

/**
 * The Standard Webhooks signature (https://www.standardwebhooks.com/): HMAC-SHA256 with the
 * secret's bytes over `{id}.{timestamp}.{body}`, as `v1,<base64>` in the `webhook-signature` header.
 */
export function signWebhook(secret: string, id: string, timestampSeconds: number, body: string): string {
  const mac = createHmac("sha256", keyOf(secret)).update(`${id}.${timestampSeconds}.${body}`).digest("base64");
  return `v1,${mac}`;
}

/** The headers of one signed request. */
export function webhookHeaders(secret: string, id: string, timestampSeconds: number, body: string) {
  return {
    "webhook-id": id,
    "webhook-timestamp": String(timestampSeconds),
    "webhook-signature": signWebhook(secret, id, timestampSeconds, body),
  };
}

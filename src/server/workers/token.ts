import { isSealed, type SecretBox } from "../keystore/secrets.js";

/** Authenticated context of a sealed worker token; keys:rotate (keystore/rotate.ts) re-seals it under this name. */
export const WORKER_TOKEN_CONTEXT = "workers.token";

/**
 * The one place a worker's bearer token is turned into what is stored and back: sealed with the
 * keystore's SecretBox (AES-256-GCM), so the database never holds it in clear.
 */
export function sealWorkerToken(box: SecretBox, token: string | null | undefined): string | null {
  return token ? box.seal(token, WORKER_TOKEN_CONTEXT) : null;
}

/**
 * Opens a stored token. A value stored in clear by a version before tokens were sealed is taken as
 * is; `WorkerService.sealPlainTokens` seals those at start.
 */
export function openWorkerToken(box: SecretBox, stored: string | null): string | null {
  if (!stored) return null;
  return isSealed(stored) ? box.open(stored, WORKER_TOKEN_CONTEXT) : stored;
}

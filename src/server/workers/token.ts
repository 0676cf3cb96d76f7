/**
 * The one place a worker's bearer token is turned into what is stored and back. Tokens are kept as
 * given for now; encrypting them at rest with the keystore's master key changes only these two.
 */
export function sealWorkerToken(token: string | null | undefined): string | null {
  return token ? token : null;
}

export function openWorkerToken(stored: string | null): string | null {
  return stored ?? null;
}

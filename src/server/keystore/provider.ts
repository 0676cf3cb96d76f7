import { hkdfSync } from "node:crypto";
import type { TrustConfig } from "./config.js";

/**
 * Where the master key lives. Callers only see this interface; providers register themselves
 * by name, so a new one (a cloud KMS, a hardware module) is one `registerKeystoreProvider` call.
 */
export interface KeystoreProvider {
  readonly name: string;
  /** The current 32-byte master key. Never log it or return it. */
  getMasterKey(): Promise<Buffer>;
  /** A 32-byte secret for a named purpose, bound to the current master key. */
  getSecret(name: string): Promise<Buffer>;
  /** Earlier master keys that can still open secrets while a rotation is in progress. */
  getPreviousMasterKeys(): Promise<Buffer[]>;
  /** Makes a fresh master key current and keeps the old one as previous; absent when the operator holds the key. */
  rotateMasterKey?(): Promise<void>;
  /** Forgets previous master keys once every secret is sealed under the current one. */
  retirePreviousMasterKeys?(): Promise<void>;
}

export type KeystoreFactory = (config: TrustConfig) => Promise<KeystoreProvider>;

const factories = new Map<string, KeystoreFactory>();

export function registerKeystoreProvider(name: string, factory: KeystoreFactory): void {
  factories.set(name, factory);
}

export function keystoreProviderNames(): string[] {
  return [...factories.keys()];
}

export class KeystoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KeystoreError";
  }
}

/** Opens the provider named by KEYSTORE. */
export async function openKeystore(config: TrustConfig): Promise<KeystoreProvider> {
  const factory = factories.get(config.KEYSTORE);
  if (!factory) {
    throw new KeystoreError(
      `KEYSTORE=${config.KEYSTORE} is not a keystore provider; use one of: ${keystoreProviderNames().join(", ")}.`,
    );
  }
  return factory(config);
}

export const MASTER_KEY_BYTES = 32;

/** HKDF-SHA-256 from the master key; `purpose` separates the keys so none can stand in for another. */
export function deriveKey(masterKey: Buffer, purpose: string): Buffer {
  return Buffer.from(hkdfSync("sha256", masterKey, "agent-agency/v1", purpose, 32));
}

export function decodeMasterKey(value: string, source: string): Buffer {
  const trimmed = value.trim();
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) throw new KeystoreError(`${source} is not base64.`);
  const key = Buffer.from(trimmed, "base64");
  if (key.length !== MASTER_KEY_BYTES) {
    throw new KeystoreError(
      `${source} must be base64 of exactly ${MASTER_KEY_BYTES} bytes (it decodes to ${key.length}); ` +
        "make one with `node -e \"console.log(require('crypto').randomBytes(32).toString('base64'))\"`.",
    );
  }
  return key;
}

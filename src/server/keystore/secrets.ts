import type { KeyObject } from "node:crypto";
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  randomBytes,
} from "node:crypto";
import type { PrismaClient } from "../db/generated/client.js";
import { deriveKey, KeystoreError, type KeystoreProvider } from "./provider.js";

const ENVELOPE_PREFIX = "enc1";
const NONCE_BYTES = 12;

/** Short fingerprint of a master key, stored with every ciphertext so a rotation knows what to re-seal. */
export function masterKeyId(masterKey: Buffer): string {
  return createHash("sha256").update(deriveKey(masterKey, "key-id")).digest("hex").slice(0, 16);
}

export function isSealed(value: string): boolean {
  return value.startsWith(`${ENVELOPE_PREFIX}.`);
}

/**
 * AES-256-GCM with a random 96-bit nonce, under a key derived (HKDF) from the master key.
 * `context` is authenticated data: a value sealed for one place cannot be moved to another.
 */
export class SecretBox {
  private readonly keys = new Map<string, Buffer>();
  readonly currentKeyId: string;

  constructor(current: Buffer, previous: Buffer[] = []) {
    this.currentKeyId = masterKeyId(current);
    for (const master of [current, ...previous])
      this.keys.set(masterKeyId(master), deriveKey(master, "secrets/aes-256-gcm"));
  }

  static async fromKeystore(keystore: KeystoreProvider): Promise<SecretBox> {
    return new SecretBox(await keystore.getMasterKey(), await keystore.getPreviousMasterKeys());
  }

  seal(plaintext: string | Buffer, context: string): string {
    const key = this.keys.get(this.currentKeyId) as Buffer;
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv("aes-256-gcm", key, nonce);
    cipher.setAAD(Buffer.from(context, "utf8"));
    const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    const tag = cipher.getAuthTag();
    return [ENVELOPE_PREFIX, this.currentKeyId, nonce, ct, tag]
      .map((p) => (typeof p === "string" ? p : p.toString("base64url")))
      .join(".");
  }

  /** The key id an envelope was sealed with. */
  keyIdOf(envelope: string): string {
    return this.parse(envelope).keyId;
  }

  openBuffer(envelope: string, context: string): Buffer {
    const { keyId, nonce, ct, tag } = this.parse(envelope);
    const key = this.keys.get(keyId);
    if (!key) {
      throw new KeystoreError(
        `A secret (${context}) is sealed with master key ${keyId}, which this keystore does not hold. ` +
          "Restore that key (as a previous key) and run `npm run keys:rotate`.",
      );
    }
    try {
      const decipher = createDecipheriv("aes-256-gcm", key, nonce);
      decipher.setAAD(Buffer.from(context, "utf8"));
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(ct), decipher.final()]);
    } catch {
      throw new KeystoreError(`A secret (${context}) failed its integrity check: it was altered or moved.`);
    }
  }

  open(envelope: string, context: string): string {
    return this.openBuffer(envelope, context).toString("utf8");
  }

  private parse(envelope: string) {
    const parts = envelope.split(".");
    if (parts.length !== 5 || parts[0] !== ENVELOPE_PREFIX) {
      throw new KeystoreError("A stored secret is not in the sealed format; it cannot be opened.");
    }
    const [, keyId, nonce, ct, tag] = parts as [string, string, string, string, string];
    return {
      keyId,
      nonce: Buffer.from(nonce, "base64url"),
      ct: Buffer.from(ct, "base64url"),
      tag: Buffer.from(tag, "base64url"),
    };
  }
}

type SecretsDb = Pick<PrismaClient, "secret">;

/** Named secrets at rest in the `secrets` table, sealed by a SecretBox. */
export class SecretStore {
  constructor(
    private readonly prisma: SecretsDb,
    private readonly box: SecretBox,
  ) {}

  static context(name: string): string {
    return `secret:${name}`;
  }

  async get(name: string): Promise<Buffer | null> {
    const row = await this.prisma.secret.findUnique({ where: { name } });
    return row ? this.box.openBuffer(row.value, SecretStore.context(name)) : null;
  }

  async put(name: string, value: Buffer): Promise<void> {
    const sealed = this.box.seal(value, SecretStore.context(name));
    await this.prisma.secret.upsert({
      where: { name },
      create: { name, value: sealed },
      update: { value: sealed, updatedAt: new Date() },
    });
  }

  /** Returns the stored value, or stores `make()` — whichever process gets there first wins, everyone reads it. */
  async getOrCreate(name: string, make: () => Buffer): Promise<Buffer> {
    const existing = await this.get(name);
    if (existing) return existing;
    await this.prisma.secret.createMany({
      data: [{ name, value: this.box.seal(make(), SecretStore.context(name)) }],
      skipDuplicates: true,
    });
    return (await this.get(name)) as Buffer;
  }
}

// DER prefix of a PKCS#8 Ed25519 private key; the 32-byte seed follows it.
const ED25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

export interface SigningKey {
  keyId: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicKeyPem: string;
}

export function signingKeyFromSeed(seed: Buffer): SigningKey {
  const privateKey = createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]),
    format: "der",
    type: "pkcs8",
  });
  const publicKey = createPublicKey(privateKey);
  return { keyId: publicKeyId(publicKey), privateKey, publicKey, publicKeyPem: publicKeyPem(publicKey) };
}

export function publicKeyPem(key: KeyObject): string {
  return key.export({ type: "spki", format: "pem" }).toString();
}

/** SHA-256 of the DER public key, shortened: what a provenance record names as its `keyId`. */
export function publicKeyId(key: KeyObject): string {
  return createHash("sha256")
    .update(key.export({ type: "spki", format: "der" }))
    .digest("hex")
    .slice(0, 32);
}

export const SIGNING_KEY_SECRET = "provenance-signing-key";

/**
 * The provenance signing key: a random Ed25519 seed made on first start and kept sealed in the
 * secrets table, so rotating the master key re-seals it without changing the published public key.
 */
export async function loadSigningKey(store: SecretStore): Promise<SigningKey> {
  return signingKeyFromSeed(await store.getOrCreate(SIGNING_KEY_SECRET, () => randomBytes(32)));
}

/**
 * Replaces the provenance signing key with a new random one. The old seed is kept sealed under a
 * name of its own (history: nothing signs with it again); its public key stays trusted wherever the
 * admin pinned it, so the checkpoints it signed keep verifying. Running servers sign with the old key
 * until they restart, which is as valid.
 */
export async function rotateSigningKey(store: SecretStore): Promise<{ previous: SigningKey; current: SigningKey }> {
  const previousSeed = await store.getOrCreate(SIGNING_KEY_SECRET, () => randomBytes(32));
  const previous = signingKeyFromSeed(previousSeed);
  await store.put(`${SIGNING_KEY_SECRET}.retired.${previous.keyId}`, previousSeed);
  const seed = randomBytes(32);
  await store.put(SIGNING_KEY_SECRET, seed);
  return { previous, current: signingKeyFromSeed(seed) };
}

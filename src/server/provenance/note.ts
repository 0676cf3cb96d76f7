import { createHash, createPublicKey, type KeyObject, sign, verify } from "node:crypto";

/**
 * Checkpoints in the C2SP formats, so standard tooling (golang.org/x/mod/sumdb/note, litetlog,
 * witnesses) can read them:
 *
 * - tlog-checkpoint body: `<origin>\n<tree size>\n<base64 root hash>\n`
 * - signed-note: the body, an empty line, then one line per signature:
 *   `— <key name> <base64(4-byte key hash || 64-byte Ed25519 signature)>\n`
 *   where the key hash is the first 4 bytes of SHA-256(key name || "\n" || 0x01 || public key).
 * - verifier key (what the admin pins): `<key name>+<key hash, 8 hex digits>+<base64(0x01 || public key)>`.
 */

const ED25519_ALG = 0x01;
const SIG_PREFIX = "— ";

/** A key name is non-empty, has no whitespace and no '+' (signed-note rule). */
export function isValidKeyName(name: string): boolean {
  return name.length > 0 && name.length <= 200 && !/[\s+]/u.test(name);
}

/** The 32 raw bytes of an Ed25519 public key. */
export function rawPublicKey(key: KeyObject): Buffer {
  const der = key.export({ type: "spki", format: "der" });
  return der.subarray(der.length - 32);
}

export function publicKeyFromRaw(raw: Buffer): KeyObject {
  if (raw.length !== 32) throw new Error("An Ed25519 public key is 32 bytes.");
  return createPublicKey({
    key: Buffer.concat([Buffer.from("302a300506032b6570032100", "hex"), raw]),
    format: "der",
    type: "spki",
  });
}

export function keyHash(name: string, raw: Buffer): Buffer {
  return createHash("sha256")
    .update(`${name}\n`)
    .update(Buffer.from([ED25519_ALG]))
    .update(raw)
    .digest()
    .subarray(0, 4);
}

export function verifierKey(name: string, key: KeyObject): string {
  const raw = rawPublicKey(key);
  return `${name}+${keyHash(name, raw).toString("hex")}+${Buffer.concat([Buffer.from([ED25519_ALG]), raw]).toString("base64")}`;
}

/** The fingerprint shown in the console and logs: SHA-256 of the DER public key, 32 hex digits. */
export function keyFingerprint(key: KeyObject): string {
  return createHash("sha256")
    .update(key.export({ type: "spki", format: "der" }))
    .digest("hex")
    .slice(0, 32);
}

export function checkpointBody(origin: string, size: bigint, root: Buffer): string {
  return `${origin}\n${size}\n${root.toString("base64")}\n`;
}

/** Signs `body` as a note with one signature line. */
export function signNote(body: string, name: string, privateKey: KeyObject, publicKey: KeyObject): string {
  const sig = sign(null, Buffer.from(body, "utf8"), privateKey);
  const blob = Buffer.concat([keyHash(name, rawPublicKey(publicKey)), sig]).toString("base64");
  return `${body}\n${SIG_PREFIX}${name} ${blob}\n`;
}

export interface NoteSignature {
  name: string;
  hash: Buffer;
  signature: Buffer;
}

export interface ParsedNote {
  text: string;
  body: string;
  signatures: NoteSignature[];
}

export interface Checkpoint {
  origin: string;
  size: bigint;
  root: Buffer;
}

export class NoteFormatError extends Error {}

export function parseNote(text: string): ParsedNote {
  if (!text.endsWith("\n")) throw new NoteFormatError("A signed note ends with a newline.");
  const split = text.lastIndexOf("\n\n");
  if (split < 0) throw new NoteFormatError("A signed note has an empty line between its text and its signatures.");
  const body = text.slice(0, split + 1);
  const signatures: NoteSignature[] = [];
  for (const line of text.slice(split + 2, -1).split("\n")) {
    const m = /^— (\S+) ([A-Za-z0-9+/]+=*)$/u.exec(line);
    if (!m) throw new NoteFormatError(`Not a signature line: ${JSON.stringify(line.slice(0, 80))}.`);
    const blob = Buffer.from(m[2] as string, "base64");
    if (blob.length < 5) throw new NoteFormatError("A signature line is too short.");
    signatures.push({ name: m[1] as string, hash: blob.subarray(0, 4), signature: blob.subarray(4) });
  }
  if (!signatures.length) throw new NoteFormatError("A signed note has at least one signature.");
  return { text, body, signatures };
}

export function parseCheckpointBody(body: string): Checkpoint {
  const lines = body.slice(0, -1).split("\n");
  const [origin, size, root] = lines;
  if (lines.length < 3 || !origin || !size || !root) {
    throw new NoteFormatError("A checkpoint has an origin, a tree size and a root hash, one per line.");
  }
  if (!/^(0|[1-9]\d{0,18})$/.test(size)) throw new NoteFormatError(`A checkpoint's tree size is not a number: ${size}`);
  const hash = Buffer.from(root, "base64");
  if (hash.length !== 32 || hash.toString("base64") !== root) {
    throw new NoteFormatError("A checkpoint's root hash is not base64 of 32 bytes.");
  }
  return { origin, size: BigInt(size), root: hash };
}

/** A public key the verifier trusts, pinned outside the database. */
export interface PinnedKey {
  key: KeyObject;
  raw: Buffer;
  fingerprint: string;
  /** The name in the verifier key it came from, if any (names are labels: trust is in the key). */
  name: string | null;
}

export function pinKey(key: KeyObject, name: string | null = null): PinnedKey {
  if (key.asymmetricKeyType !== "ed25519") throw new Error("A provenance key is an Ed25519 key.");
  return { key, raw: rawPublicKey(key), fingerprint: keyFingerprint(key), name };
}

export function parseVerifierKey(line: string): PinnedKey {
  // The key's base64 may itself hold '+': the name and the hash end at the first two.
  const first = line.indexOf("+");
  const second = first < 0 ? -1 : line.indexOf("+", first + 1);
  if (second < 0) throw new Error("A verifier key reads name+hash+base64key.");
  const name = line.slice(0, first);
  const hash = line.slice(first + 1, second);
  const b64 = line.slice(second + 1);
  const bytes = Buffer.from(b64, "base64");
  if (!isValidKeyName(name) || !/^[0-9a-f]{8}$/.test(hash) || bytes.length !== 33 || bytes[0] !== ED25519_ALG) {
    throw new Error("Not an Ed25519 verifier key (name+hash+base64key).");
  }
  const raw = bytes.subarray(1);
  if (keyHash(name, raw).toString("hex") !== hash) throw new Error(`The verifier key ${name}'s hash does not match.`);
  return pinKey(publicKeyFromRaw(raw), name);
}

/**
 * Keys from a file the admin keeps: verifier keys one per line and/or PEM public keys, `#` comments.
 * A line that is neither is an error naming it: a silently skipped key would look like tampering later.
 */
export function parseTrustedKeys(text: string, source: string): PinnedKey[] {
  const keys: PinnedKey[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] as string).trim();
    if (!line || line.startsWith("#")) continue;
    if (line.startsWith("-----BEGIN ")) {
      const end = lines.findIndex((l, j) => j > i && l.trim().startsWith("-----END "));
      if (end < 0) throw new Error(`${source}: the PEM block at line ${i + 1} has no END line.`);
      try {
        keys.push(pinKey(createPublicKey(lines.slice(i, end + 1).join("\n"))));
      } catch (err) {
        throw new Error(
          `${source}: the PEM block at line ${i + 1} is not an Ed25519 public key (${(err as Error).message})`,
        );
      }
      i = end;
      continue;
    }
    try {
      keys.push(parseVerifierKey(line));
    } catch (err) {
      throw new Error(`${source}, line ${i + 1}: ${(err as Error).message}`);
    }
  }
  return keys;
}

export type NoteCheck =
  | { ok: true; key: PinnedKey; checkpoint: Checkpoint }
  | { ok: false; problem: "format" | "unpinned" | "signature"; reason: string; checkpoint: Checkpoint | null };

/** Verifies a checkpoint note with pinned keys only: some signature must verify with one of them. */
export function verifyCheckpointNote(text: string, pinned: readonly PinnedKey[]): NoteCheck {
  let note: ParsedNote;
  let checkpoint: Checkpoint;
  try {
    note = parseNote(text);
    checkpoint = parseCheckpointBody(note.body);
  } catch (err) {
    return { ok: false, problem: "format", reason: (err as Error).message, checkpoint: null };
  }
  let knownButBad: string | null = null;
  for (const sig of note.signatures) {
    for (const key of pinned) {
      if (!keyHash(sig.name, key.raw).equals(sig.hash)) continue;
      let valid = false;
      try {
        valid = verify(null, Buffer.from(note.body, "utf8"), key.key, sig.signature);
      } catch {
        valid = false;
      }
      if (valid) return { ok: true, key, checkpoint };
      knownButBad = `${sig.name} (key ${key.fingerprint})`;
    }
  }
  if (knownButBad) {
    return {
      ok: false,
      problem: "signature",
      reason: `its signature by ${knownButBad} does not verify: the checkpoint was altered.`,
      checkpoint,
    };
  }
  const names = note.signatures.map((s) => `${s.name}+${s.hash.toString("hex")}`).join(", ");
  return {
    ok: false,
    problem: "unpinned",
    reason: `it is signed only by ${names}, which is not a pinned key.`,
    checkpoint,
  };
}

/**
 * Splits a file of notes (a witness file: each note as served, one after another, blank lines between
 * them allowed) into the notes. A note ends after its last signature line.
 */
export function splitNotes(text: string): string[] {
  const notes: string[] = [];
  let current: string[] = [];
  let inSignatures = false;
  const flush = () => {
    if (current.length) notes.push(`${current.join("\n")}\n`);
    current = [];
    inSignatures = false;
  };
  for (const line of text.split("\n")) {
    if (inSignatures && !line.startsWith(SIG_PREFIX)) flush();
    if (!current.length && line === "") continue;
    if (line.startsWith(SIG_PREFIX) && current.length && current[current.length - 1] === "") inSignatures = true;
    current.push(line);
  }
  flush();
  return notes;
}

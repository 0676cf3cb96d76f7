import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { type PinnedKey, parseTrustedKeys } from "./note.js";

/** Reads the admin's file of pinned provenance keys (verifier keys and/or PEM public keys). */
export async function readTrustedKeysFile(file: string): Promise<PinnedKey[]> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw new Error(
        `No trusted-keys file at ${file}. Pin the provenance key: copy the verifier key the server printed at its ` +
          "first start (or GET /provenance/public-key) into that file, or set PROVENANCE_TRUSTED_KEYS_FILE.",
      );
    }
    throw new Error(`The trusted-keys file ${file} cannot be read (${(err as NodeJS.ErrnoException).code}).`);
  }
  return parseTrustedKeys(text, file);
}

export type TrustedKeysState =
  /** The file did not exist: it was made with this key (trust on first use). */
  | "created"
  /** The file pins this key. */
  | "pinned"
  /** The file exists but does not pin this key: rotated by hand, or the key in the database was replaced. */
  | "not-pinned"
  /** The file cannot be read or parsed. */
  | "unreadable";

/**
 * At start: writes the signing key into the trusted-keys file if there is none yet, never overwriting
 * or adding to an existing one (a server that added its own key to the file it is checked against would
 * pin whatever key someone sealed into its database). The admin keeps the file, ideally a copy elsewhere.
 */
export async function ensureTrustedKeysFile(
  file: string,
  key: { verifierKey: string; fingerprint: string; publicKeyPem: string },
): Promise<{ state: TrustedKeysState; detail?: string }> {
  const header =
    "# Agent Agency provenance: public keys trusted to sign checkpoints, one verifier key (name+hash+key) per line;\n" +
    "# PEM public keys are accepted too. Keep a copy outside this machine. Added by `npm run provenance:rotate-key`.\n";
  try {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(
      file,
      `${header}# key ${key.fingerprint}, pinned ${new Date().toISOString()}\n${key.verifierKey}\n`,
      {
        flag: "wx",
        mode: 0o644,
      },
    );
    return { state: "created" };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") {
      return { state: "unreadable", detail: `cannot write ${file} (${(err as NodeJS.ErrnoException).code})` };
    }
  }
  try {
    const keys = await readTrustedKeysFile(file);
    return keys.some((k) => k.fingerprint === key.fingerprint) ? { state: "pinned" } : { state: "not-pinned" };
  } catch (err) {
    return { state: "unreadable", detail: (err as Error).message };
  }
}

/** Appends a key to the trusted-keys file (rotation), keeping every key already in it. */
export async function appendTrustedKey(file: string, key: { verifierKey: string; fingerprint: string }): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  let existing = "";
  try {
    existing = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const sep = existing && !existing.endsWith("\n") ? "\n" : "";
  await writeFile(file, `${sep}# key ${key.fingerprint}, pinned ${new Date().toISOString()}\n${key.verifierKey}\n`, {
    flag: "a",
    mode: 0o644,
  });
}

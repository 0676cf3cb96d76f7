import { randomBytes } from "node:crypto";
import { linkSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { z } from "zod";
import type { TrustConfig } from "./config.js";
import { decodeMasterKey, deriveKey, KeystoreError, type KeystoreProvider, MASTER_KEY_BYTES } from "./provider.js";

const keyFileSchema = z.object({
  version: z.literal(1),
  current: z.string(),
  previous: z.array(z.string()).default([]),
});
type KeyFile = z.output<typeof keyFileSchema>;

export function keyFilePath(config: TrustConfig): string {
  return path.resolve(config.KEYSTORE_FILE ?? path.join(config.dataDir, "master.key"));
}

function writeKeyFile(file: string, content: KeyFile, exclusive: boolean): void {
  // Written beside it and then linked or renamed into place, so no reader ever sees a half-written key file;
  // `link` fails if the file exists, which settles a race between processes starting at once.
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(content)}\n`, { mode: 0o600, flag: "wx" });
  try {
    if (exclusive) linkSync(tmp, file);
    else renameSync(tmp, file);
  } finally {
    if (exclusive) rmSync(tmp, { force: true });
  }
}

function readKeyFile(file: string): KeyFile {
  if (process.platform !== "win32") {
    const mode = statSync(file).mode & 0o777;
    if (mode & 0o077) {
      throw new KeystoreError(
        `Refusing to start: the key file ${file} is readable by group or others (mode ${mode.toString(8)}). ` +
          `Run \`chmod 600 ${file}\` and start again.`,
      );
    }
  }
  let parsed: KeyFile;
  try {
    parsed = keyFileSchema.parse(JSON.parse(readFileSync(file, "utf8")));
  } catch {
    throw new KeystoreError(`The key file ${file} is not a valid Agent Agency key file; restore it from backup.`);
  }
  decodeMasterKey(parsed.current, `the current key in ${file}`);
  for (const [i, k] of parsed.previous.entries()) decodeMasterKey(k, `previous key ${i + 1} in ${file}`);
  return parsed;
}

/** A key file in DATA_DIR, created with mode 0600 on first start. */
export async function fileKeystore(config: TrustConfig): Promise<KeystoreProvider> {
  const file = keyFilePath(config);
  mkdirSync(path.dirname(file), { recursive: true });
  try {
    writeKeyFile(file, { version: 1, current: randomBytes(MASTER_KEY_BYTES).toString("base64"), previous: [] }, true);
  } catch (err) {
    // Another process (or an earlier start) made it: use that one.
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  let content = readKeyFile(file);
  const current = () => decodeMasterKey(content.current, "current key");
  return {
    name: "file",
    getMasterKey: async () => current(),
    getSecret: async (name) => deriveKey(current(), `secret:${name}`),
    getPreviousMasterKeys: async () => content.previous.map((k) => decodeMasterKey(k, "previous key")),
    async rotateMasterKey() {
      content = readKeyFile(file);
      content = {
        version: 1,
        current: randomBytes(MASTER_KEY_BYTES).toString("base64"),
        previous: [content.current, ...content.previous],
      };
      writeKeyFile(file, content, false);
    },
    async retirePreviousMasterKeys() {
      content = { ...readKeyFile(file), previous: [] };
      writeKeyFile(file, content, false);
    },
  };
}

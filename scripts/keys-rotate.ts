// Key rotation.
//   npm run keys:rotate               re-seals every stored secret under a new master key (see .env.example, KEYSTORE)
//   npm run provenance:rotate-key     makes a new provenance signing key and appends its verifier key to the
//                                     trusted-keys file (PROVENANCE_TRUSTED_KEYS_FILE or DATA_DIR/provenance-trusted-keys);
//                                     the old keys stay there, so the checkpoints they signed keep verifying.
//                                     Restart every server process afterwards to sign with the new key.
import { parseArgs } from "node:util";
import { loadConfig } from "../src/server/config.js";
import { openDatabase } from "../src/server/db/database.js";
import { migrate } from "../src/server/db/migrate.js";
import { loadTrustConfig } from "../src/server/keystore/config.js";
import { openKeystore } from "../src/server/keystore/index.js";
import { rotateKeys } from "../src/server/keystore/rotate.js";
import { rotateSigningKey, SecretBox, SecretStore } from "../src/server/keystore/secrets.js";
import { keyFingerprint, verifierKey } from "../src/server/provenance/note.js";
import { provenanceOrigin, trustedKeysFile } from "../src/server/provenance/setup.js";
import { appendTrustedKey } from "../src/server/provenance/trusted-keys.js";

const { values } = parseArgs({ options: { "provenance-key": { type: "boolean" } }, strict: true });
const base = loadConfig();
const config = loadTrustConfig(process.env, base.dataDir);
const db = await openDatabase({ url: base.DATABASE_URL, schema: base.DATABASE_SCHEMA, dataDir: base.dataDir });
try {
  await migrate(db);
  const keystore = await openKeystore(config);
  if (values["provenance-key"]) {
    const store = new SecretStore(db.prisma, await SecretBox.fromKeystore(keystore));
    const { previous, current } = await rotateSigningKey(store);
    const file = trustedKeysFile(config);
    const vkey = verifierKey(provenanceOrigin(config), current.publicKey);
    const fingerprint = keyFingerprint(current.publicKey);
    await appendTrustedKey(file, { verifierKey: vkey, fingerprint });
    console.log(
      `New provenance signing key ${fingerprint} (was ${keyFingerprint(previous.publicKey)}).\n` +
        `Its verifier key, appended to ${file} (the old keys stay trusted for the checkpoints they signed):\n${vkey}\n` +
        "Copy it to every other place you pin keys, then restart every server process to sign with it.",
    );
  } else {
    const result = await rotateKeys(db, keystore);
    console.log(
      `Secrets re-sealed under master key ${result.keyId}: ${result.resealed} re-sealed, ${result.alreadyCurrent} already current.`,
    );
  }
} catch (err) {
  console.error(
    `${values["provenance-key"] ? "provenance:rotate-key" : "keys:rotate"} failed: ${err instanceof Error ? err.message : String(err)}`,
  );
  process.exitCode = 1;
} finally {
  await db.close();
}

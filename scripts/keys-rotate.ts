// Re-seals every stored secret under a new master key. See .env.example (KEYSTORE) for how each provider rotates.
import { loadConfig } from "../src/server/config.js";
import { openDatabase } from "../src/server/db/database.js";
import { migrate } from "../src/server/db/migrate.js";
import { loadTrustConfig } from "../src/server/keystore/config.js";
import { openKeystore } from "../src/server/keystore/index.js";
import { rotateKeys } from "../src/server/keystore/rotate.js";

const base = loadConfig();
const config = loadTrustConfig(process.env, base.dataDir);
const db = await openDatabase({ url: base.DATABASE_URL, schema: base.DATABASE_SCHEMA, dataDir: base.dataDir });
try {
  await migrate(db);
  const keystore = await openKeystore(config);
  const result = await rotateKeys(db, keystore);
  console.log(
    `Secrets re-sealed under master key ${result.keyId}: ${result.resealed} re-sealed, ${result.alreadyCurrent} already current.`,
  );
} catch (err) {
  console.error(`keys:rotate failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
} finally {
  await db.close();
}

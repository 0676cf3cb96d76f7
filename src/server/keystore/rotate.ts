import type { Database } from "../db/database.js";
import type { KeystoreProvider } from "./provider.js";
import { isSealed, SecretBox, SecretStore } from "./secrets.js";

/**
 * Every column that holds sealed values, with the authenticated context each value was sealed for.
 * A feature that seals a new column adds it here, and `keys:rotate` covers it.
 */
export const SEALED_COLUMNS: { table: string; key: string; column: string; context: (key: string) => string }[] = [
  { table: "secrets", key: "name", column: "value", context: SecretStore.context },
  { table: "workers", key: "id", column: "token", context: () => "workers.token" },
  { table: "webhook_endpoints", key: "id", column: "secret", context: () => "webhooks.secret" },
];

export interface RotationResult {
  keyId: string;
  resealed: number;
  alreadyCurrent: number;
}

/**
 * Re-seals every stored secret under the keystore's current master key, each column in one
 * transaction. Values already under the current key are left alone, so a rotation that stopped
 * halfway is finished by running it again.
 */
export async function resealAll(db: Database, keystore: KeystoreProvider): Promise<RotationResult> {
  const box = await SecretBox.fromKeystore(keystore);
  let resealed = 0;
  let alreadyCurrent = 0;
  for (const col of SEALED_COLUMNS) {
    const exists = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2`,
      [col.table, col.column],
    );
    if (!exists[0]?.n) continue;
    await db.prisma.$transaction(async (tx) => {
      const rows = await tx.$queryRawUnsafe<{ k: string; v: string | null }[]>(
        `SELECT "${col.key}"::text AS k, "${col.column}" AS v FROM "${col.table}" FOR UPDATE`,
      );
      for (const row of rows) {
        if (!row.v || !isSealed(row.v)) continue;
        if (box.keyIdOf(row.v) === box.currentKeyId) {
          alreadyCurrent++;
          continue;
        }
        const ctx = col.context(row.k);
        const next = box.seal(box.openBuffer(row.v, ctx), ctx);
        await tx.$executeRawUnsafe(
          `UPDATE "${col.table}" SET "${col.column}" = $1 WHERE "${col.key}"::text = $2`,
          next,
          row.k,
        );
        resealed++;
      }
    });
  }
  return { keyId: box.currentKeyId, resealed, alreadyCurrent };
}

/** Makes a new master key (providers that can), re-seals everything, then forgets the old key. */
export async function rotateKeys(db: Database, keystore: KeystoreProvider): Promise<RotationResult> {
  if (keystore.rotateMasterKey) await keystore.rotateMasterKey();
  else if ((await keystore.getPreviousMasterKeys()).length === 0) {
    throw new Error(
      `The ${keystore.name} keystore cannot make a new key itself. Set the new key as the current one and the old ` +
        "one as previous (for KEYSTORE=env: AGENCY_MASTER_KEY and AGENCY_MASTER_KEY_PREVIOUS), then run this again.",
    );
  }
  const result = await resealAll(db, keystore);
  await keystore.retirePreviousMasterKeys?.();
  return result;
}

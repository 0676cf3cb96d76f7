import type { TrustConfig } from "./config.js";
import { decodeMasterKey, deriveKey, KeystoreError, type KeystoreProvider } from "./provider.js";

/** The operator holds the key (AGENCY_MASTER_KEY); to rotate, they set a new one and move the old to _PREVIOUS. */
export async function envKeystore(config: TrustConfig): Promise<KeystoreProvider> {
  if (!config.AGENCY_MASTER_KEY) {
    throw new KeystoreError("KEYSTORE=env needs AGENCY_MASTER_KEY (base64 of 32 random bytes).");
  }
  const master = decodeMasterKey(config.AGENCY_MASTER_KEY, "AGENCY_MASTER_KEY");
  const previous = (config.AGENCY_MASTER_KEY_PREVIOUS ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((v, i) => decodeMasterKey(v, `AGENCY_MASTER_KEY_PREVIOUS entry ${i + 1}`));
  return {
    name: "env",
    getMasterKey: async () => master,
    getSecret: async (name) => deriveKey(master, `secret:${name}`),
    getPreviousMasterKeys: async () => previous,
  };
}

import { AuditService } from "../audit/service.js";
import type { Database } from "../db/database.js";
import type { TrustConfig } from "../keystore/config.js";
import { openKeystore } from "../keystore/index.js";
import type { KeystoreProvider } from "../keystore/provider.js";
import { SecretBox, SecretStore } from "../keystore/secrets.js";
import type { Logger } from "../logger.js";
import type { ProvenanceService } from "../provenance/service.js";
import { createProvenance } from "../provenance/setup.js";
import { AuthService } from "./service.js";

/** Keystore, sealed secrets, audit trail, provenance chain and sign-in, built together at start. */
export interface TrustServices {
  keystore: KeystoreProvider;
  /** Seals values for columns listed in keystore/rotate.ts (e.g. worker tokens); `open` with the same context. */
  secretBox: SecretBox;
  secrets: SecretStore;
  audit: AuditService;
  provenance: ProvenanceService;
  auth: AuthService;
}

/** Opens the keystore (a bad key file or key stops the start with the reason), then bootstraps the first admin. */
export async function createTrustServices(db: Database, config: TrustConfig, log: Logger): Promise<TrustServices> {
  const keystore = await openKeystore(config);
  const secretBox = await SecretBox.fromKeystore(keystore);
  const secrets = new SecretStore(db.prisma, secretBox);
  const audit = new AuditService(db);
  const { provenance } = await createProvenance(db, secrets, config, log);
  const auth = new AuthService(db, audit, config, log);
  await auth.bootstrap();
  log.info({ keystore: keystore.name, provenanceKeyId: provenance.keyId }, "keystore opened");
  return { keystore, secretBox, secrets, audit, provenance, auth };
}

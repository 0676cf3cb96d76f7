import os from "node:os";
import path from "node:path";
import type { Database } from "../db/database.js";
import type { TrustConfig } from "../keystore/config.js";
import { loadSigningKey, type SecretStore } from "../keystore/secrets.js";
import type { Logger } from "../logger.js";
import { assertAllowedWorkerUrl } from "../workers/allowlist.js";
import { isValidKeyName } from "./note.js";
import { ProvenanceService } from "./service.js";
import { ensureTrustedKeysFile } from "./trusted-keys.js";
import { WitnessFile, WitnessWebhook } from "./witness.js";

export const TRUSTED_KEYS_FILE_NAME = "provenance-trusted-keys";

/** The checkpoint origin: PROVENANCE_ORIGIN, or agent-agency/<host name> made safe for a note key name. */
export function provenanceOrigin(config: Pick<TrustConfig, "PROVENANCE_ORIGIN">): string {
  if (config.PROVENANCE_ORIGIN) return config.PROVENANCE_ORIGIN;
  const host =
    os
      .hostname()
      .replace(/[^A-Za-z0-9._-]/g, "-")
      .slice(0, 100) || "localhost";
  const origin = `agent-agency/${host}`;
  return isValidKeyName(origin) ? origin : "agent-agency/localhost";
}

export const trustedKeysFile = (config: Pick<TrustConfig, "PROVENANCE_TRUSTED_KEYS_FILE" | "dataDir">): string =>
  path.resolve(config.PROVENANCE_TRUSTED_KEYS_FILE ?? path.join(config.dataDir, TRUSTED_KEYS_FILE_NAME));

export interface ProvenanceSetup {
  provenance: ProvenanceService;
  /** Waits for the witnesses to deliver what they hold (shutdown, tests). */
  flushWitnesses(): Promise<void>;
}

/**
 * The provenance log at start: the signing key (sealed in the database), the pinned-keys file written
 * on first start and checked on every start, the legacy chain's tree derived once, and the witnesses.
 */
export async function createProvenance(
  db: Database,
  secrets: SecretStore,
  config: TrustConfig & { WORKER_ALLOWED_HOSTS?: readonly string[] },
  log: Logger,
): Promise<ProvenanceSetup> {
  let webhook: WitnessWebhook | null = null;
  if (config.PROVENANCE_WITNESS_URL) {
    try {
      assertAllowedWorkerUrl(config.PROVENANCE_WITNESS_URL, config.WORKER_ALLOWED_HOSTS ?? []);
    } catch (err) {
      throw new Error(`PROVENANCE_WITNESS_URL: ${(err as Error).message.replace(/^Worker /, "")}`);
    }
    webhook = new WitnessWebhook({ url: config.PROVENANCE_WITNESS_URL }, log);
  }
  const file = config.PROVENANCE_WITNESS_FILE
    ? new WitnessFile(path.resolve(config.PROVENANCE_WITNESS_FILE), log)
    : null;
  const provenance = new ProvenanceService(db, await loadSigningKey(secrets), {
    origin: provenanceOrigin(config),
    trustedKeysFile: trustedKeysFile(config),
  });
  if (file) provenance.onCheckpoint((note) => file.push(note));
  if (webhook) provenance.onCheckpoint((note) => webhook.push(note));

  const { upgraded } = await provenance.init();
  if (upgraded) log.info({ records: upgraded }, "provenance: Merkle tree derived for the records of the legacy chain");

  const pinned = await ensureTrustedKeysFile(provenance.trustedKeysFile, {
    verifierKey: provenance.verifierKey,
    fingerprint: provenance.keyId,
    publicKeyPem: provenance.publicKeyPem,
  });
  const fields = {
    fingerprint: provenance.keyId,
    verifierKey: provenance.verifierKey,
    trustedKeysFile: provenance.trustedKeysFile,
  };
  if (pinned.state === "created") {
    log.info(
      fields,
      "provenance signing key pinned in a new trusted-keys file: keep a copy of it outside this machine",
    );
  } else if (pinned.state === "pinned") {
    log.info(fields, "provenance signing key");
  } else {
    log.warn(
      { ...fields, detail: pinned.detail },
      pinned.state === "not-pinned"
        ? "provenance signing key is NOT in the trusted-keys file: its checkpoints will not verify. If you rotated the " +
            "key, run `npm run provenance:rotate-key`; otherwise the key in the database was replaced"
        : "provenance trusted-keys file cannot be read",
    );
  }
  return {
    provenance,
    async flushWitnesses() {
      await Promise.all([file?.flush(), webhook?.flush()]);
    },
  };
}

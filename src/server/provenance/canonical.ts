import { createHash } from "node:crypto";

/** The one canonical JSON (src/shared), which the worker SDK uses too; re-exported for the provenance modules. */
export { canonicalJson } from "../../shared/canonical-json.js";

export const sha256Hex = (text: string | Buffer): string => createHash("sha256").update(text).digest("hex");

import { createHash } from "node:crypto";

/**
 * Canonical JSON: object keys sorted, no whitespace, dates as ISO strings, bigints as decimal strings,
 * `undefined` members dropped. The same value always gives the same bytes, here and in any verifier.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || value === undefined) return "null";
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  switch (typeof value) {
    case "string":
    case "boolean":
      return JSON.stringify(value);
    case "number":
      if (!Number.isFinite(value)) throw new TypeError("Provenance payloads cannot hold NaN or Infinity.");
      return JSON.stringify(value);
    case "bigint":
      return JSON.stringify(value.toString());
    case "object": {
      // Built with plain loops: this runs for every record and every row digest on the hot path.
      if (Array.isArray(value)) {
        let out = "[";
        for (let i = 0; i < value.length; i++) out += (i ? "," : "") + canonicalJson(value[i] ?? null);
        return `${out}]`;
      }
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj).sort();
      let out = "{";
      let first = true;
      for (const k of keys) {
        const v = obj[k];
        if (v === undefined) continue;
        out += `${first ? "" : ","}${JSON.stringify(k)}:${canonicalJson(v)}`;
        first = false;
      }
      return `${out}}`;
    }
    default:
      throw new TypeError(`Provenance payloads cannot hold a ${typeof value}.`);
  }
}

export const sha256Hex = (text: string | Buffer): string => createHash("sha256").update(text).digest("hex");

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
      if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v ?? null)).join(",")}]`;
      const entries = Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
    }
    default:
      throw new TypeError(`Provenance payloads cannot hold a ${typeof value}.`);
  }
}

export const sha256Hex = (text: string | Buffer): string => createHash("sha256").update(text).digest("hex");

/**
 * Canonical JSON, the one implementation for server and worker SDK: object keys sorted (by UTF-16 code
 * unit), no whitespace, `undefined` members dropped (and `undefined` array items written as `null`), a Date as
 * its ISO string, a bigint as a decimal string. The same value always gives the same bytes, here and in any
 * verifier; the provenance log's digests are taken over it.
 *
 * Values JSON cannot carry faithfully are refused with a TypeError instead of being written as something else:
 * NaN and Infinity, an invalid Date, a Map or Set (plain JSON would write `{}`), functions and symbols.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || value === undefined) return "null";
  switch (typeof value) {
    case "string":
    case "boolean":
      return JSON.stringify(value);
    case "number":
      if (!Number.isFinite(value)) throw new TypeError(`Canonical JSON cannot hold ${value}.`);
      return JSON.stringify(value);
    case "bigint":
      return JSON.stringify(value.toString());
    case "object": {
      if (value instanceof Date) {
        if (Number.isNaN(value.getTime())) throw new TypeError("Canonical JSON cannot hold an invalid Date.");
        return JSON.stringify(value.toISOString());
      }
      if (value instanceof Map || value instanceof Set) {
        throw new TypeError(
          `Canonical JSON cannot hold a ${value instanceof Map ? "Map" : "Set"}: convert it to an object or array first.`,
        );
      }
      // Built with plain loops: this runs for every provenance record and row digest on the hot path.
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
      throw new TypeError(`Canonical JSON cannot hold a ${typeof value}.`);
  }
}

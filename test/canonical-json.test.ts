import { describe, expect, it } from "vitest";
import { canonicalJson as serverCanonical } from "../src/server/provenance/canonical.js";
import { canonicalJson } from "../src/shared/canonical-json.js";

describe("canonical JSON (src/shared, used by the provenance log and the worker SDK)", () => {
  it("is the one implementation: the provenance module re-exports it", () => {
    expect(serverCanonical).toBe(canonicalJson);
  });

  it("sorts keys at every depth, drops undefined members, writes no whitespace", () => {
    expect(canonicalJson({ b: 1, a: { d: [1, "x", null], c: true, z: undefined }, é: 0, Z: 2 })).toBe(
      '{"Z":2,"a":{"c":true,"d":[1,"x",null]},"b":1,"é":0}',
    );
    expect(canonicalJson([undefined, 1])).toBe("[null,1]");
    expect(canonicalJson(undefined)).toBe("null");
  });

  it("gives the same bytes for the same value built in a different key order", () => {
    const a = { spec: { title: "t", budget: { maxDurationSec: 5, tokens: 10 } }, attempt: 2 };
    const b = { attempt: 2, spec: { budget: { tokens: 10, maxDurationSec: 5 }, title: "t" } };
    expect(canonicalJson(a)).toBe(canonicalJson(b));
  });

  it("writes a Date as its ISO string (JSON.stringify's form), not as {}", () => {
    const at = new Date("2024-05-06T07:08:09.010Z");
    expect(canonicalJson({ at })).toBe('{"at":"2024-05-06T07:08:09.010Z"}');
    // What the stored (JSON) form of the same value hashes to: a Date and its ISO string are the same record.
    expect(canonicalJson({ at })).toBe(canonicalJson(JSON.parse(JSON.stringify({ at }))));
  });

  it("writes a bigint as a decimal string", () => {
    expect(canonicalJson({ seq: 9007199254740993n })).toBe('{"seq":"9007199254740993"}');
  });

  it("refuses what JSON cannot carry faithfully, saying what it was", () => {
    expect(() => canonicalJson({ n: Number.NaN })).toThrow(/cannot hold NaN/);
    expect(() => canonicalJson([Number.POSITIVE_INFINITY])).toThrow(/cannot hold Infinity/);
    expect(() => canonicalJson({ at: new Date("not a date") })).toThrow(/invalid Date/);
    expect(() => canonicalJson({ m: new Map([["a", 1]]) })).toThrow(/cannot hold a Map/);
    expect(() => canonicalJson(new Set([1]))).toThrow(/cannot hold a Set/);
    expect(() => canonicalJson({ f: () => 1 })).toThrow(/cannot hold a function/);
    expect(() => canonicalJson(Symbol("s"))).toThrow(/cannot hold a symbol/);
  });
});

import { z } from "zod";

/**
 * Text the database can store as it was sent. Postgres `text` and `jsonb` cannot hold U+0000, and a
 * lone UTF-16 surrogate is not Unicode at all (the driver would turn it into U+FFFD on the way in,
 * or `jsonb` would refuse it): either would fail deep in a write, or store something other than
 * what was signed. Every string an API client or a worker sends is checked here first.
 */
export function textProblem(s: string): string | null {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0) return `contains a NUL character (U+0000) at index ${i}: send text without NUL characters`;
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++;
        continue;
      }
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const hex = c.toString(16).toUpperCase();
      return `contains a lone surrogate (U+${hex}) at index ${i}: send valid Unicode text`;
    }
  }
  return null;
}

/** Replaces NUL characters and lone surrogates with U+FFFD: for relayed output that is shown, not judged or signed. */
export function toStorableText(s: string): string {
  if (textProblem(s) === null) return s;
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const next = s.charCodeAt(i + 1);
    if (c >= 0xd800 && c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
      out += s.slice(i, i + 2);
      i++;
    } else if (c === 0 || (c >= 0xd800 && c <= 0xdfff)) out += "\uFFFD";
    else out += s.charAt(i);
  }
  return out;
}

/** Adds the text check to a string schema (keeps its type, so `.min`, `.max`, `.default` still chain). */
export function safeText<T extends z.ZodType<string>>(schema: T): T {
  return schema.check((ctx) => {
    const problem = textProblem(ctx.value);
    if (problem) ctx.issues.push({ code: "custom", message: problem, input: ctx.value, params: { text: true } });
  });
}

/** `z.string()` with the text check. */
export const text = () => safeText(z.string());

/** How deeply a request may nest objects and arrays, envelope included (see trpc.ts); free input has its own, lower bound. */
export const MAX_REQUEST_DEPTH = 64;

export interface JsonProblem {
  kind: "depth" | "text" | "type" | "size";
  /** Where, from the value's root. */
  path: (string | number)[];
  message: string;
}

export interface JsonLimits {
  /** Objects and arrays nested deeper than this are refused (the root object is level 1). */
  maxDepth: number;
  /** Keys, elements and strings checked before giving up: bounds the walk whatever the input. */
  maxNodes?: number;
  /** Check strings and keys with textProblem. */
  checkText?: boolean;
  /** Refuse values JSON cannot carry as they are (bigint, Date, Map, NaN, undefined …) as superjson may produce. */
  plainJsonOnly?: boolean;
}

const kindOf = (v: unknown): string => {
  if (v === undefined) return "undefined";
  if (typeof v === "number") return String(v);
  if (typeof v !== "object" || v === null) return typeof v;
  return (v as object).constructor?.name ?? "object";
};

/**
 * The first thing wrong with a JSON value, or null. Iterative (an explicit stack), so a value nested
 * ten thousand levels deep gets a message rather than "Maximum call stack size exceeded".
 */
export function jsonProblem(root: unknown, limits: JsonLimits): JsonProblem | null {
  const maxNodes = limits.maxNodes ?? 1_000_000;
  const stack: { value: unknown; path: (string | number)[]; depth: number }[] = [{ value: root, path: [], depth: 0 }];
  let nodes = 0;
  while (stack.length) {
    const { value, path, depth } = stack.pop() as (typeof stack)[number];
    if (++nodes > maxNodes) return { kind: "size", path, message: `has more than ${maxNodes} values` };
    if (typeof value === "string") {
      const problem = limits.checkText ? textProblem(value) : null;
      if (problem) return { kind: "text", path, message: problem };
      continue;
    }
    if (value === null || typeof value === "boolean") continue;
    if (typeof value === "number") {
      if (limits.plainJsonOnly && !Number.isFinite(value)) {
        return { kind: "type", path, message: `must be JSON: ${kindOf(value)} is not a JSON number` };
      }
      continue;
    }
    const isArray = Array.isArray(value);
    const plain =
      isArray ||
      (typeof value === "object" &&
        (Object.getPrototypeOf(value) === Object.prototype || Object.getPrototypeOf(value) === null));
    if (!plain) {
      if (!limits.plainJsonOnly) continue;
      return {
        kind: "type",
        path,
        message: `must be JSON (string, number, boolean, null, array or object), not ${kindOf(value)}`,
      };
    }
    if (depth + 1 > limits.maxDepth) {
      return {
        kind: "depth",
        path,
        message: `is nested more than ${limits.maxDepth} levels deep (objects and arrays)`,
      };
    }
    if (isArray) {
      const arr = value as unknown[];
      for (let i = arr.length - 1; i >= 0; i--) stack.push({ value: arr[i], path: [...path, i], depth: depth + 1 });
      continue;
    }
    const entries = Object.entries(value as Record<string, unknown>);
    for (let i = entries.length - 1; i >= 0; i--) {
      const [k, v] = entries[i] as [string, unknown];
      if (limits.checkText) {
        const problem = textProblem(k);
        if (problem) return { kind: "text", path: [...path, k], message: `has a key that ${problem}` };
      }
      stack.push({ value: v, path: [...path, k], depth: depth + 1 });
    }
  }
  return null;
}

/** "1 retry", "2 retries": a count with its noun in the right number. */
export function countOf(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

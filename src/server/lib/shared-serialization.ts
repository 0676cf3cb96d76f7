import type { DataTransformer } from "@trpc/server";
import superjson from "superjson";

const shared = new WeakSet<object>();
const serialized = new WeakMap<object, { id: unknown; out: unknown }>();
/** The shared serializations handed out, and the frame last encoded around each. */
const frames = new WeakMap<object, { key: string; frame: string } | null>();

/**
 * Marks an item that is handed, unchanged, to every subscriber of a feed (a task event, a chat
 * message): the transformer serializes it once for all of them instead of once per connection.
 * The item must not be changed after it is marked.
 */
export function shareWithSubscribers<T extends object>(item: T): T {
  shared.add(item);
  return item;
}

/** The marked item a value carries: itself, or (a `tracked` event) the `data` of the `{ id, data }` wrapper the WebSocket adapter builds per subscriber. */
function sharedItem(value: unknown): { item: object; id: unknown } | null {
  if (value === null || typeof value !== "object") return null;
  if (shared.has(value)) return { item: value, id: undefined };
  const { id, data } = value as { id?: unknown; data?: unknown };
  if (typeof data !== "object" || data === null || !shared.has(data)) return null;
  return Object.keys(value).length === 2 && "id" in value ? { item: data, id } : null;
}

/** superjson, with one serialization per marked item (and tracked id) shared by every subscriber. */
export const sharedSuperjson: DataTransformer = {
  serialize(value: unknown) {
    const found = sharedItem(value);
    if (!found) return superjson.serialize(value);
    const hit = serialized.get(found.item);
    if (hit && hit.id === found.id) return hit.out;
    const out = superjson.serialize(value);
    serialized.set(found.item, { id: found.id, out });
    frames.set(out, null);
    return out;
  },
  deserialize: (value: unknown) => superjson.deserialize(value as Parameters<typeof superjson.deserialize>[0]),
};

/**
 * tRPC's WebSocket encoder (JSON text frames), with one JSON.stringify per shared item: the frames
 * around a shared serialization differ per subscriber only in the envelope (the subscription id),
 * so the frame is kept and reused while the envelope is the same, as it is for clients that
 * number their subscriptions alike.
 */
export const sharedFrameEncoder = {
  encode(message: unknown): string {
    const result = (message as { result?: { data?: unknown } } | null)?.result;
    const data = result?.data;
    if (typeof data !== "object" || data === null || !frames.has(data)) return JSON.stringify(message);
    const { id, jsonrpc } = message as { id?: unknown; jsonrpc?: unknown };
    const { type, id: trackedId } = result as { type?: unknown; id?: unknown };
    const shape = [Object.keys(message as object).length, Object.keys(result as object).length];
    const key = JSON.stringify([id, jsonrpc, type, trackedId, shape]);
    const hit = frames.get(data);
    if (hit?.key === key) return hit.frame;
    const frame = JSON.stringify(message);
    frames.set(data, { key, frame });
    return frame;
  },
  decode(data: string | ArrayBuffer | Uint8Array): unknown {
    if (typeof data !== "string") throw new Error("Expected a JSON text frame.");
    return JSON.parse(data);
  },
};

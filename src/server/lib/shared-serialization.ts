import type { DataTransformer } from "@trpc/server";
import superjson from "superjson";

const shared = new WeakSet<object>();
const serialized = new WeakMap<object, { id: unknown; out: unknown }>();

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
    return out;
  },
  deserialize: (value: unknown) => superjson.deserialize(value as Parameters<typeof superjson.deserialize>[0]),
};

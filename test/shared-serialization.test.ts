import superjson from "superjson";
import { describe, expect, it } from "vitest";
import { sharedFrameEncoder, sharedSuperjson, shareWithSubscribers } from "../src/server/lib/shared-serialization.js";

const message = () => ({
  id: "m1",
  content: "hello",
  links: [{ taskId: "t1" }],
  createdAt: new Date("2026-11-25T12:00:00.000Z"),
  updatedAt: new Date("2026-11-25T12:00:01.000Z"),
});

describe("sharedSuperjson", () => {
  it("serializes exactly as superjson does, marked or not, and round-trips dates", () => {
    const plain = { id: "7", data: message() };
    const marked = { id: "7", data: shareWithSubscribers(message()) };
    expect(sharedSuperjson.serialize(plain)).toEqual(superjson.serialize(plain));
    expect(sharedSuperjson.serialize(marked)).toEqual(superjson.serialize(marked));
    const back = sharedSuperjson.deserialize(sharedSuperjson.serialize(marked)) as { data: { createdAt: Date } };
    expect(back.data.createdAt).toBeInstanceOf(Date);
    expect(back.data.createdAt.toISOString()).toBe("2026-11-25T12:00:00.000Z");
  });

  it("serializes a marked item once for every subscriber's { id, data } wrapper", () => {
    const item = shareWithSubscribers(message());
    const first = sharedSuperjson.serialize({ id: "7", data: item });
    expect(sharedSuperjson.serialize({ id: "7", data: item })).toBe(first);
    expect(sharedSuperjson.serialize(item)).toEqual(superjson.serialize(item));
  });

  it("does not reuse a serialization across tracked ids or for unmarked items", () => {
    const item = shareWithSubscribers(message());
    const a = sharedSuperjson.serialize({ id: "7", data: item });
    const b = sharedSuperjson.serialize({ id: "8", data: item }) as { json: { id: string } };
    expect(b).not.toBe(a);
    expect(b.json.id).toBe("8");
    const unmarked = message();
    expect(sharedSuperjson.serialize({ id: "7", data: unmarked })).not.toBe(
      sharedSuperjson.serialize({ id: "7", data: unmarked }),
    );
    // A wrapper with more than id and data is not the adapter's: serialized on its own.
    const extra = { id: "7", data: item, more: 1 } as const;
    expect(sharedSuperjson.serialize(extra)).toEqual(superjson.serialize(extra));
  });
});

describe("sharedFrameEncoder", () => {
  /** The frame tRPC's WebSocket adapter sends for a tracked item to a subscription `sub`. */
  const frameFor = (item: object, sub: number | string, tracked = "7") => ({
    id: sub,
    jsonrpc: "2.0",
    result: { type: "data", data: sharedSuperjson.serialize({ id: tracked, data: item }), id: tracked },
  });

  it("encodes every frame as JSON.stringify does", () => {
    const item = shareWithSubscribers(message());
    for (const m of [frameFor(item, 1), frameFor(item, 2), { id: 3, result: { type: "stopped" } }, { x: [1, "a"] }]) {
      expect(sharedFrameEncoder.encode(m)).toBe(JSON.stringify(m));
    }
    expect(sharedFrameEncoder.decode(JSON.stringify({ a: 1 }))).toEqual({ a: 1 });
    expect(() => sharedFrameEncoder.decode(new Uint8Array([1]))).toThrow(/text frame/);
  });

  it("reuses a shared item's frame while the envelope is the same, and only then", () => {
    const item = shareWithSubscribers(message());
    const first = sharedFrameEncoder.encode(frameFor(item, 1));
    expect(sharedFrameEncoder.encode(frameFor(item, 1))).toBe(first);
    const other = sharedFrameEncoder.encode(frameFor(item, 2));
    expect(other).toBe(JSON.stringify(frameFor(item, 2)));
    expect(JSON.parse(other).id).toBe(2);
    const retracked = sharedFrameEncoder.encode(frameFor(item, 2, "8"));
    expect(JSON.parse(retracked).result.id).toBe("8");
    expect(JSON.parse(retracked).result.data.json.id).toBe("8");
    // An envelope with another shape (an extra field) is encoded on its own.
    const extra = { ...frameFor(item, 2, "8"), more: true };
    expect(sharedFrameEncoder.encode(extra)).toBe(JSON.stringify(extra));
  });
});

import superjson from "superjson";
import { describe, expect, it } from "vitest";
import { sharedSuperjson, shareWithSubscribers } from "../src/server/lib/shared-serialization.js";

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

import { afterEach, describe, expect, it, vi } from "vitest";
import { TailHub, type TailSource } from "../src/server/lib/tail-hub.js";
import { silentLog } from "./helpers/services.js";

interface Row {
  position: bigint;
}

describe("TailHub", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("after a failed read, reads again only after a pause, without starving the event loop, then delivers", async () => {
    const rows: Row[] = [{ position: 1n }, { position: 2n }];
    let failing = true;
    let reads = 0;
    const source: TailSource<Row, undefined> = {
      max: async () => 0n,
      readAfter: async (after) => {
        reads++;
        if (failing) throw new Error("the database is gone");
        return rows.filter((r) => r.position > after);
      },
      positionOf: (r) => r.position,
      matches: () => true,
    };
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval"] });
    const hub = new TailHub(source, silentLog, "test hub");
    await hub.start();
    const ctrl = new AbortController();
    const got: bigint[] = [];
    const reading = (async () => {
      for await (const r of hub.subscribe({ filter: undefined, signal: ctrl.signal })) {
        got.push(r.position);
        if (got.length === rows.length) return;
      }
    })();
    // Told of a commit, and while reading, of rows another process committed: the read fails.
    hub.notify();
    hub.notifyUpTo(2n);
    // The failed read is retried after a pause (1 s), not at once: until then, no read, however many turns
    // of the event loop pass (a read that looped on microtasks would never let this advance return).
    await vi.advanceTimersByTimeAsync(999);
    expect(reads).toBe(1);
    failing = false;
    await vi.advanceTimersByTimeAsync(1);
    await reading;
    expect(got).toEqual([1n, 2n]);
    expect(reads).toBe(2);
    ctrl.abort();
    hub.stop();
  });
});

import { getEventListeners } from "node:events";
import { describe, expect, it } from "vitest";
import { BoundedQueue } from "../src/server/lib/async-queue.js";

describe("BoundedQueue", () => {
  it("hands over what was queued, in order, and waits for more", async () => {
    const q = new BoundedQueue<number>(10);
    q.push(1);
    q.push(2);
    expect(await q.drain()).toEqual([1, 2]);
    const next = q.drain();
    q.push(3);
    expect(await next).toEqual([3]);
  });

  it("drops the backlog and says so when a slow consumer lets it fill up", async () => {
    const q = new BoundedQueue<number>(3);
    for (let i = 0; i < 4; i++) q.push(i);
    expect(q.overflowed).toBe(true);
    expect(await q.drain()).toEqual([]);
  });

  it("ends a wait when the consumer's signal aborts, with one abort listener however many waits", async () => {
    const q = new BoundedQueue<number>(10);
    const ctrl = new AbortController();
    for (let i = 0; i < 50; i++) {
      const waiting = q.drain(ctrl.signal);
      q.push(i);
      expect(await waiting).toEqual([i]);
    }
    expect(getEventListeners(ctrl.signal, "abort")).toHaveLength(1);
    const waiting = q.drain(ctrl.signal);
    ctrl.abort();
    expect(await waiting).toEqual([]);
  });
});

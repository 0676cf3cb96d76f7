import { EventEmitter } from "node:events";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { WebSocket } from "ws";
import { CREDENTIALS_ENDED_CLOSE_CODE, SocketGuard } from "../src/server/auth/socket-guard.js";
import type { Actor } from "../src/shared/roles.js";
import { type Harness, harness } from "./helpers/services.js";

/** Stands in for a ws socket: the guard only listens for "close" and calls close(). */
class FakeSocket extends EventEmitter {
  closedWith: number | null = null;
  close(code: number) {
    this.closedWith = code;
    this.emit("close");
  }
}

describe("SocketGuard with many sockets", () => {
  let h: Harness;
  const admin = { actor: { kind: "system", id: "test", name: "test", role: "admin" } as Actor };

  beforeAll(async () => {
    h = await harness("pglite");
  });
  afterAll(async () => {
    await h?.dispose();
  });

  it("resolves each distinct credential once per pass, and still closes the sockets of a revoked token", async () => {
    const auth = h.services.auth;
    await auth.createUser(admin, { username: "many", role: "viewer", password: "many sockets password" });
    const user: Actor = { kind: "user", id: "many", name: "many", role: "viewer" };
    const shared = await auth.createToken({ actor: user }, "shared");
    const other = await auth.createToken({ actor: user }, "other");
    const guard = new SocketGuard(auth, 60_000);
    try {
      const resolve = vi.spyOn(auth, "resolveCaller");
      const sharedActor = (await auth.resolveActor({ connectionParams: { token: shared.token } })) as Actor;
      const watch = (token: string) => {
        const ws = new FakeSocket();
        guard.watch(ws as unknown as WebSocket, { connectionParams: { token } }, sharedActor);
        return ws;
      };
      const many = Array.from({ length: 200 }, () => watch(shared.token));
      const lone = watch(other.token);
      resolve.mockClear();

      await guard.recheck();
      expect(resolve).toHaveBeenCalledTimes(2);
      expect([...many, lone].every((ws) => ws.closedWith === null)).toBe(true);

      // Calls made while a pass waits to start share it.
      const a = guard.recheck();
      expect(guard.recheck()).toBe(a);
      await a;

      await auth.revokeToken({ actor: user }, other.id);
      await guard.recheck();
      expect(lone.closedWith).toBe(CREDENTIALS_ENDED_CLOSE_CODE);
      expect(many.every((ws) => ws.closedWith === null)).toBe(true);
      expect(guard.watched).toBe(200);
      resolve.mockRestore();
    } finally {
      guard.stop();
    }
  });
});

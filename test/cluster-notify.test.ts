import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LIVE_CHANNEL, LiveBus, type TypingNotice } from "../src/server/cluster/live-bus.js";
import { type Database, openDatabase } from "../src/server/db/database.js";
import { appendTaskEvents } from "../src/server/events/append.js";
import { TaskEventHub } from "../src/server/events/task-event-hub.js";
import type { TaskEventDto } from "../src/shared/task-events.js";
import { taskSpecSchema } from "../src/shared/task-spec.js";
import { freshDatabase, POSTGRES_URL, type TestDatabase } from "./helpers/databases.js";
import { waitFor } from "./helpers/fault-worker.js";
import { actor, type Harness, harness, silentLog } from "./helpers/services.js";

/**
 * The LISTEN/NOTIFY path on its own: a second pool on the same schema stands for another process.
 * Its hub never polls, so whatever it delivers was announced by a notification (or read after a
 * reconnection of its LISTEN connection).
 */
describe.skipIf(!POSTGRES_URL)("LISTEN/NOTIFY fan-out between processes", () => {
  let writer: Harness;
  let other: Database;
  let otherSchema: TestDatabase;
  let hub: TaskEventHub;
  let bus: LiveBus;
  let taskId: string;

  async function write(n: number) {
    await writer.db.prisma.$transaction((tx) =>
      appendTaskEvents(
        tx,
        Array.from({ length: n }, (_, i) => ({ taskId, type: "log", actor: "test", data: { i } })),
      ),
    );
  }

  async function take(it: AsyncGenerator<TaskEventDto>, n: number, during: () => Promise<void>) {
    // "From now on" is what this hub has delivered so far: catch it up first.
    await hub.flush();
    const out: TaskEventDto[] = [];
    const first = it.next();
    await during();
    let next = await first;
    while (!next.done) {
      out.push(next.value);
      if (out.length >= n) break;
      next = await it.next();
    }
    await it.return(undefined);
    return out.map((e) => e.seq);
  }

  async function seqsAfter(after: string) {
    const rows = await writer.db.prisma.taskEvent.findMany({
      where: { taskId, seq: { gt: BigInt(after) } },
      orderBy: { seq: "asc" },
      select: { seq: true },
    });
    return rows.map((r) => r.seq.toString());
  }

  const listenPids = async () =>
    (
      await writer.db.query<{ pid: number }>(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND query ILIKE 'LISTEN%'",
        [`agency listen ${writer.db.schema}`.slice(0, 63)],
      )
    ).map((r) => r.pid);

  beforeAll(async () => {
    writer = await harness("postgres");
    other = await openDatabase({ url: POSTGRES_URL, schema: writer.db.schema });
    otherSchema = await freshDatabase("postgres", { migrate: false });
    bus = new LiveBus(other, silentLog);
    await bus.start();
    hub = new TaskEventHub(other, silentLog, 0);
    await hub.start();
    hub.follow(bus);
    taskId = (await writer.services.tasks.create(actor(), taskSpecSchema.parse({ title: "announced" }))).id;
  });

  afterAll(async () => {
    hub?.stop();
    await bus?.stop();
    await other?.close();
    await otherSchema?.dispose();
    await writer?.dispose();
  });

  it("delivers events committed through another pool, in order, without polling", async () => {
    const from = (await writer.db.prisma.taskEvent.aggregate({ _max: { seq: true } }))._max.seq?.toString() ?? "0";
    const got = await take(hub.subscribe({ filter: { taskId } }), 30, async () => {
      for (let i = 0; i < 3; i++) await write(10);
    });
    expect(got).toEqual(await seqsAfter(from));
    expect(got).toHaveLength(30);
  });

  it("reads what was committed while its LISTEN connection was down once it is back", async () => {
    const before = await listenPids();
    expect(before.length).toBeGreaterThanOrEqual(2);
    const from = (await writer.db.prisma.taskEvent.aggregate({ _max: { seq: true } }))._max.seq?.toString() ?? "0";
    const got = await take(hub.subscribe({ filter: { taskId } }), 20, async () => {
      await writer.db.query("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", [before]);
      await write(10);
      await write(10);
    });
    expect(got).toEqual(await seqsAfter(from));
    const after = await waitFor(
      "the LISTEN connections to come back",
      listenPids,
      (pids) => pids.length >= 2 && pids.every((p) => !before.includes(p)),
    );
    expect(after.length).toBeGreaterThanOrEqual(2);
  });

  it("carries typing notices of its schema only, and ignores payloads it cannot read", async () => {
    const seen: TypingNotice[] = [];
    const off = bus.onTyping((t) => seen.push(t));
    try {
      const notice = { sessionId: randomUUID(), userId: "op-1", name: "Op One", at: Date.now() };
      // Another schema on the same server (another deployment), then garbage, then ours, in that order.
      await new LiveBus(otherSchema, silentLog).publishTyping({ ...notice, userId: "elsewhere" });
      await writer.db.query("SELECT pg_notify($1, $2)", [LIVE_CHANNEL, "not json"]);
      await writer.db.query("SELECT pg_notify($1, $2)", [
        LIVE_CHANNEL,
        JSON.stringify({ s: writer.db.schema, k: "typing", userId: 42 }),
      ]);
      await writer.services.bus.publishTyping(notice);
      await waitFor(
        "the typing notice",
        async () => seen.length,
        (n) => n > 0,
      );
      expect(seen).toEqual([notice]);
    } finally {
      off();
    }
  });
});

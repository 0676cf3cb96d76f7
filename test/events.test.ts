import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appendTaskEvents } from "../src/server/events/append.js";
import type { TaskEventDto } from "../src/shared/task-events.js";
import { taskSpecSchema } from "../src/shared/task-spec.js";
import { DATABASES } from "./helpers/databases.js";
import { actor, type Harness, harness } from "./helpers/services.js";

describe.each(DATABASES)("task event stream on %s", (kind) => {
  let h: Harness;
  let taskA: string;
  let taskB: string;

  /** Appends `n` events to a task in one committed transaction, through the production path. */
  async function write(taskId: string, n: number, tag: string, type: "log" | "progress" = "log") {
    await h.db.prisma.$transaction((tx) =>
      appendTaskEvents(
        tx,
        Array.from({ length: n }, (_, i) => ({ taskId, type, actor: "test", data: { tag, i } })),
      ),
    );
    h.services.hub.notify();
  }

  async function allSeqs(taskId?: string, after = 0n, type?: string) {
    const rows = await h.db.prisma.taskEvent.findMany({
      where: { seq: { gt: after }, ...(taskId ? { taskId } : {}), ...(type ? { type } : {}) },
      orderBy: { seq: "asc" },
      select: { seq: true },
    });
    return rows.map((r) => r.seq.toString());
  }

  async function take(it: AsyncGenerator<TaskEventDto>, n: number, during?: () => Promise<void>) {
    const out: TaskEventDto[] = [];
    let side: Promise<void> | undefined;
    for await (const e of it) {
      out.push(e);
      if (out.length === 1 && during) side = during();
      if (out.length >= n) break;
    }
    await side;
    return out;
  }

  beforeAll(async () => {
    h = await harness(kind);
    const op = actor();
    taskA = (await h.services.tasks.create(op, taskSpecSchema.parse({ title: "A" }))).id;
    taskB = (await h.services.tasks.create(op, taskSpecSchema.parse({ title: "B" }))).id;
    for (let i = 0; i < 6; i++) await write(i % 2 ? taskA : taskB, 200, "history");
  });
  afterAll(() => h.dispose());

  it("replays from lastEventId then goes live, with events committed during the replay: no gap, no duplicate", async () => {
    const history = await allSeqs();
    expect(history.length).toBeGreaterThan(1000); // more than two replay pages
    const ac = new AbortController();
    const stream = h.services.hub.subscribe({ lastEventId: "0", signal: ac.signal });
    const concurrent = async () => {
      for (let i = 0; i < 30; i++) await write(i % 2 ? taskA : taskB, 5, "during");
    };
    const got = await take(stream, history.length + 150, concurrent);
    ac.abort();
    const seqs = got.map((e) => e.seq);
    expect(seqs).toEqual(await allSeqs());
    expect(new Set(seqs).size).toBe(seqs.length);
  });

  it("resumes after any event id of one task, and only that task's events", async () => {
    const mine = await allSeqs(taskA);
    const resumeAfter = mine[100] as string;
    const ac = new AbortController();
    const stream = h.services.hub.subscribe({ filter: { taskId: taskA }, lastEventId: resumeAfter, signal: ac.signal });
    const expected = await allSeqs(taskA, BigInt(resumeAfter));
    const got = await take(stream, expected.length + 10, async () => {
      await write(taskB, 10, "other task");
      await write(taskA, 10, "after");
    });
    ac.abort();
    expect(got.every((e) => e.taskId === taskA)).toBe(true);
    expect(got.map((e) => e.seq)).toEqual(await allSeqs(taskA, BigInt(resumeAfter)));
  });

  it("delivers only the kinds asked for, in the replay and live, for one task or every task", async () => {
    const from = (await allSeqs()).at(-1) as string;
    await write(taskA, 40, "kinds before", "log");
    await write(taskA, 3, "kinds before", "progress");
    await write(taskB, 2, "kinds before", "progress");
    const ac = new AbortController();
    const one = h.services.hub.subscribe({
      filter: { taskId: taskA, kinds: ["progress"] },
      lastEventId: from,
      signal: ac.signal,
    });
    const all = h.services.hub.subscribe({ filter: { kinds: ["progress"] }, lastEventId: from, signal: ac.signal });
    const live = async () => {
      await write(taskA, 30, "kinds live", "log");
      await write(taskA, 2, "kinds live", "progress");
      await write(taskB, 30, "kinds live", "log");
      await write(taskB, 1, "kinds live", "progress");
    };
    const mine = await take(one, 5, live);
    const every = await take(all, 8);
    ac.abort();
    expect(mine.map((e) => e.seq)).toEqual(await allSeqs(taskA, BigInt(from), "progress"));
    expect(every.map((e) => e.seq)).toEqual(await allSeqs(undefined, BigInt(from), "progress"));
    expect(every.every((e) => e.type === "progress")).toBe(true);
  });

  it("without lastEventId starts from now", async () => {
    const ac = new AbortController();
    const stream = h.services.hub.subscribe({ signal: ac.signal });
    const first = stream.next();
    await write(taskA, 1, "now");
    const e = await first;
    ac.abort();
    expect(e.value?.data).toMatchObject({ tag: "now" });
    expect(e.value?.seq).toBe((await allSeqs()).at(-1));
  });

  it("a subscriber that stops reading is caught up from the database, not buffered without bound", async () => {
    const ac = new AbortController();
    const stream = h.services.hub.subscribe({ signal: ac.signal });
    const first = stream.next(); // subscribe, then stall
    const before = (await allSeqs()).at(-1) as string;
    for (let i = 0; i < 6; i++) await write(taskB, 500, "flood"); // 3000 events > the 2000 buffer
    await h.services.hub.flush();
    const got = [(await first).value as TaskEventDto, ...(await take(stream, 2999))];
    ac.abort();
    expect(got.map((e) => e.seq)).toEqual(await allSeqs(undefined, BigInt(before)));
  });

  it("ends the stream when the subscriber goes away", async () => {
    const ac = new AbortController();
    const before = h.services.hub.subscriberCount;
    const stream = h.services.hub.subscribe({ signal: ac.signal });
    const pending = stream.next();
    await expect.poll(() => h.services.hub.subscriberCount).toBe(before + 1);
    ac.abort();
    expect((await pending).done).toBe(true);
    expect(h.services.hub.subscriberCount).toBe(before);
  });
});

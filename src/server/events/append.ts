import type { Prisma, TaskEvent } from "../db/generated/client.js";

/** One lock for the whole event log: events commit in the order their `seq` was drawn. */
export const EVENT_LOG_LOCK_KEY = 72_707_370;

export type Tx = Prisma.TransactionClient;

export interface NewTaskEvent {
  taskId: string;
  type: string;
  fromState?: TaskEvent["fromState"];
  toState?: TaskEvent["toState"];
  actor: string;
  data?: Prisma.InputJsonValue;
}

/**
 * Appends events inside the caller's transaction. Call it last in the transaction: the lock is
 * held until commit, which is what keeps commit order equal to `seq` order.
 */
export async function appendTaskEvents(tx: Tx, events: NewTaskEvent[]): Promise<TaskEvent[]> {
  if (events.length === 0) return [];
  await tx.$executeRaw`SELECT pg_advisory_xact_lock(${EVENT_LOG_LOCK_KEY}::bigint)`;
  return tx.taskEvent.createManyAndReturn({
    data: events.map((e) => ({ ...e, data: e.data ?? {} })),
  });
}

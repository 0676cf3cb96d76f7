import type { TaskEventDto } from "../../shared/task-events.js";
import type { Database } from "../db/database.js";
import { TailHub, type TailSource } from "../lib/tail-hub.js";
import type { Logger } from "../logger.js";
import { lastEventSeq, readEventsAfter, type TaskEventFilter } from "./read.js";

export { type TaskEventFilter, toEventDto } from "./read.js";

/** The task event log as a TailHub reads it: positions are `seq`, announced on the LiveBus as `task_events`. */
export function taskEventSource(db: Database): TailSource<TaskEventDto, TaskEventFilter> {
  return {
    busKind: "task_events",
    max: () => lastEventSeq(db),
    readAfter: (after, limit, filter) => readEventsAfter(db, after, limit, filter),
    positionOf: (e) => BigInt(e.seq),
    matches: (e, f) => (!f.taskId || e.taskId === f.taskId) && (!f.kinds || f.kinds.includes(e.type)),
  };
}

/**
 * Delivers committed task events, in `seq` order, to live subscribers: a TailHub over `task_events`
 * (see TailHub for the mechanism), filtered by task and by kind.
 *
 * Writers take a transaction-scoped advisory lock before appending events, so events commit in `seq`
 * order; after the commit they call `notify()`. Several processes: each one's hub is told of the others'
 * commits through the LiveBus (`follow`, NOTIFY sent by a trigger on commit) and reads the rows itself.
 */
export class TaskEventHub extends TailHub<TaskEventDto, TaskEventFilter> {
  constructor(
    db: Database,
    log: Logger,
    /** Also look for new events on this period (for writers in other processes); 0 turns it off. */
    pollMs = 0,
  ) {
    super(taskEventSource(db), log, "task event hub", pollMs);
  }
}

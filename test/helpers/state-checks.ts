import { ACTIVE_STATES, type TaskState, type Transition, type TransitionActor } from "../../src/shared/task-state.js";
import type { ExecuteRequest, ExecuteResult } from "../../src/shared/worker-protocol.js";
import type { FaultWorker } from "./fault-worker.js";

// The properties a run of the agency must hold, as pure functions over what was stored and seen.
// Each returns violations as sentences (empty: the property holds), so one run reports all of them.

/** A small seeded PRNG (mulberry32): the same seed gives the same schedule. */
export function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick<T>(items: readonly T[]): T {
      return items[Math.floor(next() * items.length)] as T;
    },
    /** One key of `weights`, with probability proportional to its weight. */
    weighted<K extends string>(weights: Record<K, number>): K {
      const entries = Object.entries(weights) as [K, number][];
      let r = next() * entries.reduce((s, [, w]) => s + w, 0);
      for (const [k, w] of entries) {
        r -= w;
        if (r < 0) return k;
      }
      return entries[entries.length - 1]?.[0] as K;
    },
  };
}

export interface StoredTask {
  id: string;
  state: TaskState;
}

export interface StoredEvent {
  seq: bigint;
  taskId: string;
  type: string;
  fromState: TaskState | null;
  toState: TaskState | null;
  actor: string;
}

export interface StoredAttempt {
  taskId: string;
  number: number;
  state: string;
  workerId: string | null;
  startedAt: Date;
  finishedAt: Date | null;
}

/** Actors the agency writes on its own transitions; every other actor is a person (here the admin). */
const SYSTEM_ACTORS = new Set(["system", "council"]);

/**
 * Rebuilds each task's state sequence from its stored events (`created`, then every `state_changed`
 * in `seq` order) and checks it against the transition table: each change starts where the last one
 * ended (no change missing from the log), each is a transition of the table, made by an actor the
 * table allows, and the sequence ends in the state the task's row holds.
 */
export function checkEventChains(
  tasks: StoredTask[],
  events: StoredEvent[],
  table: readonly Transition[],
  personRole: TransitionActor = "admin",
): { violations: string[]; sequences: Map<string, TaskState[]> } {
  const violations: string[] = [];
  const sequences = new Map<string, TaskState[]>();
  const byTask = new Map<string, StoredEvent[]>();
  for (const e of [...events].sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0))) {
    const list = byTask.get(e.taskId) ?? [];
    list.push(e);
    byTask.set(e.taskId, list);
  }
  for (const task of tasks) {
    const list = (byTask.get(task.id) ?? []).filter((e) => e.type === "created" || e.type === "state_changed");
    const [first, ...rest] = list;
    if (first?.type !== "created" || first.toState !== "queued") {
      violations.push(`task ${task.id}: its first state event is not "created" to queued`);
      continue;
    }
    const seq: TaskState[] = ["queued"];
    for (const e of rest) {
      const at = seq[seq.length - 1] as TaskState;
      const from = e.fromState as TaskState;
      const to = e.toState as TaskState;
      if (e.type === "created") {
        violations.push(`task ${task.id}: a second "created" event (seq ${e.seq})`);
        continue;
      }
      if (from !== at) {
        violations.push(
          `task ${task.id}: event seq ${e.seq} changes ${from} → ${to}, but the task was ${at} (a state change is missing from the log, or two writers raced)`,
        );
      }
      const t = table.find((x) => x.from === from && x.to === to);
      if (!t) {
        violations.push(`task ${task.id}: event seq ${e.seq} changes ${from} → ${to}, which the table does not allow`);
      } else {
        const by: TransitionActor = SYSTEM_ACTORS.has(e.actor) ? "system" : personRole;
        if (!t.by.includes(by)) {
          violations.push(
            `task ${task.id}: event seq ${e.seq} (${from} → ${to}) was made by ${e.actor} (${by}); the table allows only ${t.by.join(", ")}`,
          );
        }
      }
      seq.push(to);
    }
    sequences.set(task.id, seq);
    const last = seq[seq.length - 1];
    if (last !== task.state) {
      violations.push(`task ${task.id}: its events end in ${last}, its row says ${task.state}`);
    }
  }
  return { violations, sequences };
}

/**
 * The states the task rows were seen in while the run went on (polled, so some are skipped) must
 * appear, in that order, in the sequence the events tell: a row never shows a state its log lacks.
 */
export function checkRowObservations(
  observed: Map<string, TaskState[]>,
  sequences: Map<string, TaskState[]>,
): string[] {
  const violations: string[] = [];
  for (const [id, seen] of observed) {
    const full = sequences.get(id);
    if (!full) continue; // reported by checkEventChains
    let i = 0;
    for (const s of seen) {
      while (i < full.length && full[i] !== s) i++;
      if (i === full.length) {
        violations.push(
          `task ${id}: its row was seen as ${seen.join(" → ")}, which is not a subsequence of its logged states ${full.join(" → ")}`,
        );
        break;
      }
    }
  }
  return violations;
}

/** Once the system settles, no task is in an active state and no attempt is still running. */
export function checkSettled(tasks: StoredTask[], attempts: StoredAttempt[]): string[] {
  const violations: string[] = [];
  for (const t of tasks) {
    if (ACTIVE_STATES.includes(t.state)) violations.push(`task ${t.id}: still ${t.state} after the run settled`);
  }
  for (const a of attempts) {
    if (a.state === "running") {
      violations.push(`task ${a.taskId}: attempt ${a.number} is still running in the database after the run settled`);
    }
  }
  return violations;
}

/** In the agency's own records, no two attempts of one task were running over overlapping times. */
export function checkAttemptOverlap(attempts: StoredAttempt[]): string[] {
  const violations: string[] = [];
  const byTask = new Map<string, StoredAttempt[]>();
  for (const a of attempts) byTask.set(a.taskId, [...(byTask.get(a.taskId) ?? []), a]);
  for (const [id, list] of byTask) {
    const sorted = [...list].sort((a, b) => a.number - b.number);
    for (let i = 1; i < sorted.length; i++) {
      const prev = sorted[i - 1] as StoredAttempt;
      const next = sorted[i] as StoredAttempt;
      const prevEnd = prev.finishedAt?.getTime() ?? Number.POSITIVE_INFINITY;
      if (next.startedAt.getTime() < prevEnd) {
        violations.push(
          `task ${id}: attempt ${next.number} started (${next.startedAt.toISOString()}) before attempt ${prev.number} ended (${prev.finishedAt?.toISOString() ?? "never"}, ${prev.state})`,
        );
      }
    }
  }
  return violations;
}

/** One run of real work at a worker: from the request that started it to its result or cancel. */
export interface WorkerRun {
  worker: string;
  taskId: string;
  attempt: number;
  /** Positions on one counter shared by every worker of the ledger (order, not time). */
  start: number;
  end: number | null;
}

/**
 * Watches fault workers from the outside: when each run of real work starts (the first request with
 * its idempotency key: `taskId:attempt`, as the fault worker keys its runs) and ends (its result is
 * made, or a `/cancel` stops it). All workers share one counter, so runs on different workers compare.
 */
export class RunLedger {
  readonly runs: WorkerRun[] = [];
  private readonly open = new Map<string, WorkerRun>();
  private readonly seen = new Set<string>();
  private clock = 0;

  /** The `result` option for a fault worker named `worker`: records the end, then answers with `inner`. */
  result(worker: string, inner: (req: ExecuteRequest) => ExecuteResult) {
    return (req: ExecuteRequest): ExecuteResult => {
      this.end(worker, `${req.taskId}:${req.attempt}`);
      return inner(req);
    };
  }

  /** Starts recording `fw`'s requests and cancels (wraps the push of the arrays it appends them to). */
  attach(worker: string, fw: FaultWorker): void {
    const requests = fw.requests;
    const pushRequest = requests.push.bind(requests);
    requests.push = (...items: ExecuteRequest[]) => {
      for (const r of items) this.start(worker, r);
      return pushRequest(...items);
    };
    const cancels = fw.cancels;
    const pushCancel = cancels.push.bind(cancels);
    cancels.push = (...items: FaultWorker["cancels"]) => {
      for (const c of items) this.end(worker, `${c.taskId}:${c.attempt}`);
      return pushCancel(...items);
    };
  }

  private start(worker: string, r: ExecuteRequest) {
    const key = `${worker}/${r.taskId}:${r.attempt}`;
    // A repeat of a key attaches to its run (or gets its stored result): no new work.
    if (this.seen.has(key)) return;
    this.seen.add(key);
    const run: WorkerRun = { worker, taskId: r.taskId, attempt: r.attempt, start: ++this.clock, end: null };
    this.runs.push(run);
    this.open.set(key, run);
  }

  private end(worker: string, runKey: string) {
    const key = `${worker}/${runKey}`;
    const run = this.open.get(key);
    if (!run) return;
    run.end = ++this.clock;
    this.open.delete(key);
  }
}

/**
 * At the workers, no two runs of one task (different attempts, on one worker or two) overlapped. A
 * run still open when the check runs is open for good: an attempt the agency left running.
 */
export function checkWorkerRuns(runs: WorkerRun[]): string[] {
  const violations: string[] = [];
  const byTask = new Map<string, WorkerRun[]>();
  for (const r of runs) byTask.set(r.taskId, [...(byTask.get(r.taskId) ?? []), r]);
  for (const [id, list] of byTask) {
    for (let i = 0; i < list.length; i++) {
      for (let j = i + 1; j < list.length; j++) {
        const a = list[i] as WorkerRun;
        const b = list[j] as WorkerRun;
        const aEnd = a.end ?? Number.POSITIVE_INFINITY;
        const bEnd = b.end ?? Number.POSITIVE_INFINITY;
        if (a.start < bEnd && b.start < aEnd) {
          violations.push(
            `task ${id}: attempt ${a.attempt} on ${a.worker} ${a.end === null ? "(never stopped)" : ""} and attempt ${b.attempt} on ${b.worker} ${b.end === null ? "(never stopped)" : ""} ran at the same time at the workers`.replace(
              /\s+/g,
              " ",
            ),
          );
        }
      }
    }
  }
  return violations;
}

/** What the fault workers record themselves: each key started real work once, one run per task at a time. */
export function checkFaultWorker(name: string, fw: FaultWorker, tasks?: Set<string>): string[] {
  const violations: string[] = [];
  const mine = (taskId: string) => !tasks || tasks.has(taskId);
  for (const [key, n] of fw.executions) {
    if (n > 1 && mine(key.split(":")[0] ?? ""))
      violations.push(`${name}: idempotency key ${key} started real work ${n} times`);
  }
  for (const [taskId, n] of fw.maxConcurrentPerTask) {
    if (n > 1 && mine(taskId))
      violations.push(`${name}: task ${taskId} had ${n} attempts running at once on this worker`);
  }
  return violations;
}

/**
 * Gap-free events: a client that followed the live stream (resuming after each restart from the last
 * event it had) received exactly the stored events up to its last one, each once, in `seq` order.
 */
export function checkFollowedEvents(received: bigint[], stored: bigint[]): string[] {
  const violations: string[] = [];
  for (let i = 1; i < received.length; i++) {
    if ((received[i] as bigint) <= (received[i - 1] as bigint)) {
      violations.push(`the live stream delivered seq ${received[i]} after seq ${received[i - 1]}`);
    }
  }
  const last = received[received.length - 1] ?? 0n;
  const got = new Set(received);
  const missed = stored.filter((s) => s <= last && !got.has(s));
  if (missed.length) {
    violations.push(
      `the live stream skipped ${missed.length} stored event(s) before its last one (seq ${last}): ${missed.slice(0, 10).join(", ")}`,
    );
  }
  const storedSet = new Set(stored);
  const phantom = received.filter((s) => !storedSet.has(s));
  if (phantom.length) violations.push(`the live stream delivered events that are not stored: ${phantom.join(", ")}`);
  return violations;
}

/** Provenance records are numbered by their appender, never by a sequence: 1…N with no hole. */
export function checkProvenanceSeq(seqs: bigint[]): string[] {
  const sorted = [...seqs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (let i = 0; i < sorted.length; i++) {
    if (sorted[i] !== BigInt(i + 1)) {
      return [`provenance records: expected seq ${i + 1}, found ${sorted[i]} (a hole or a duplicate)`];
    }
  }
  return [];
}

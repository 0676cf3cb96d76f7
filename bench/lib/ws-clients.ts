/**
 * WebSocket subscribers for the benches, spread over several client processes (child_process.fork of
 * ws-client-process.ts), so that decoding a message for one client does not queue behind decoding it
 * for every other client on one event loop. Each process records when each delivery reached its
 * client's onData (clock.ts: performance.timeOrigin + performance.now(), comparable across processes)
 * and hands the timestamps to the bench on request.
 */
import { type ChildProcess, execFileSync, fork } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { clock, sleep } from "./clock.js";

export type SubscriptionSpec =
  | { topic: "chat"; sessionId: string }
  | { topic: "metrics" }
  | { topic: "tasks"; taskId?: string };

export type ChildRequest =
  | {
      id: number;
      kind: "open";
      url: string;
      token: string;
      groups: { spec: SubscriptionSpec; count: number }[];
      batch: number;
    }
  | { id: number; kind: "collect" }
  | { id: number; kind: "clock" }
  | { id: number; kind: "memory" }
  | { id: number; kind: "close" };

export type ChildReply =
  | { id: number; kind: "started" }
  | { id: number; kind: "opened"; opened: number; ms: number }
  | {
      id: number;
      kind: "collected";
      arrivals: Map<string, number[]>;
      frames: Record<string, number>;
      errors: string[];
      connects: number;
      unexpectedCloses: number;
      open: number;
      cpuUs: number;
    }
  | { id: number; kind: "clock"; at: number }
  | { id: number; kind: "memory"; rss: number }
  | { id: number; kind: "closed"; closed: number }
  | { id: number; kind: "error"; message: string };

type RequestBody = ChildRequest extends infer R ? (R extends ChildRequest ? Omit<R, "id"> : never) : never;
type ReplyOf<K extends ChildReply["kind"]> = Extract<ChildReply, { kind: K }>;

/** What all client processes received since the last collect. */
export interface Collected {
  /** Receive times (clock.ts) per key, over all clients of all processes. */
  arrivals: Map<string, number[]>;
  frames: Record<string, number>;
  errors: string[];
  /** WebSocket opens so far; more than the clients opened means some reconnected. */
  connects: number;
  unexpectedCloses: number;
  open: number;
  /** CPU time (user + system, µs) all client processes used so far. */
  cpuUs: number;
}

/** The soft limit on open files of this process (inherited by its children). */
export function openFileLimit(): number {
  try {
    const line = readFileSync("/proc/self/limits", "utf8")
      .split("\n")
      .find((l) => l.startsWith("Max open files"));
    const soft = line?.split(/\s{2,}/)[1];
    if (soft === "unlimited") return Number.POSITIVE_INFINITY;
    if (soft) return Number(soft);
  } catch {
    // Not Linux: ask a shell, which inherits this process's limits.
  }
  const out = execFileSync("sh", ["-c", "ulimit -n"], { encoding: "utf8" }).trim();
  return out === "unlimited" ? Number.POSITIVE_INFINITY : Number(out);
}

/**
 * Throws a clear error when the open-file limit or the ephemeral port range cannot hold the run: the
 * server process needs one descriptor per connection, each client process one per client it holds.
 */
export function checkConnectionLimits(clients: number, processes: number): string {
  const limit = openFileLimit();
  const serverNeeds = clients + 256;
  const clientNeeds = Math.ceil(clients / processes) + 256;
  if (limit < serverNeeds) {
    throw new Error(
      `ulimit -n is ${limit}, but this run needs at least ${serverNeeds} open files in the server process ` +
        `(${clients} WebSocket connections + database, listening and IPC descriptors). Raise it in the shell ` +
        `that starts the bench (\`ulimit -n ${Math.max(20000, serverNeeds)}\`, within the hard limit \`ulimit -Hn\`) ` +
        "or lower BENCH_CLIENTS.",
    );
  }
  let ports = "";
  try {
    const [lo, hi] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    if (lo !== undefined && hi !== undefined) {
      if (hi - lo + 1 < clients + 1000) {
        throw new Error(
          `the ephemeral port range ${lo}-${hi} has ${hi - lo + 1} ports, too few for ${clients} connections ` +
            "to one server port; widen net.ipv4.ip_local_port_range or lower BENCH_CLIENTS.",
        );
      }
      ports = `, ephemeral ports ${lo}-${hi}`;
    }
  } catch (err) {
    if (err instanceof Error && err.message.startsWith("the ephemeral")) throw err;
  }
  return `ulimit -n ${limit} (needs ${serverNeeds} in the server, ${clientNeeds} per client process)${ports}`;
}

class ClientProcess {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (r: ChildReply) => void; reject: (e: Error) => void }>();
  private exited: Error | null = null;

  constructor(
    readonly index: number,
    private readonly child: ChildProcess,
  ) {
    child.on("message", (reply: ChildReply) => {
      const w = this.waiting.get(reply.id);
      if (!w) return;
      this.waiting.delete(reply.id);
      if (reply.kind === "error") w.reject(new Error(`client process ${index}: ${reply.message}`));
      else w.resolve(reply);
    });
    child.once("exit", (code, signal) => {
      this.exited = new Error(`client process ${index} exited (${signal ?? code})`);
      for (const w of this.waiting.values()) w.reject(this.exited);
      this.waiting.clear();
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  request<K extends ChildReply["kind"]>(req: RequestBody, expect: K): Promise<ReplyOf<K>> {
    if (this.exited) return Promise.reject(this.exited);
    const id = this.nextId++;
    return new Promise<ChildReply>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.child.send({ ...req, id } as ChildRequest);
    }).then((r) => {
      if (r.kind !== expect) throw new Error(`client process ${this.index}: expected ${expect}, got ${r.kind}`);
      return r as ReplyOf<K>;
    });
  }

  stop(): Promise<void> {
    if (this.exited) return Promise.resolve();
    return new Promise((resolve) => {
      this.child.once("exit", () => resolve());
      this.child.disconnect();
    });
  }
}

export interface PoolOptions {
  /** ws://host:port/trpc */
  url: string;
  /** An API token, sent in connectionParams as the console does. */
  token: string;
  processes: number;
}

/** Real tRPC WebSocket clients, spread round-robin over `processes` client processes. */
export class WsClientPool {
  private opened = 0;

  private constructor(
    private readonly options: PoolOptions,
    private readonly procs: ClientProcess[],
  ) {}

  static async start(options: PoolOptions): Promise<WsClientPool> {
    const entry = fileURLToPath(new URL("./ws-client-process.ts", import.meta.url));
    const procs = await Promise.all(
      Array.from({ length: options.processes }, async (_, i) => {
        const child = fork(entry, [], {
          execArgv: process.execArgv,
          env: process.env,
          serialization: "advanced",
          stdio: ["ignore", "inherit", "inherit", "ipc"],
        });
        await new Promise<void>((resolve, reject) => {
          child.once("message", () => resolve());
          child.once("exit", (code) => reject(new Error(`client process ${i} exited while starting (${code})`)));
        });
        return new ClientProcess(i, child);
      }),
    );
    return new WsClientPool(options, procs);
  }

  get processes(): number {
    return this.procs.length;
  }

  get pids(): number[] {
    return this.procs.map((p) => p.pid ?? -1);
  }

  /**
   * Opens `count` clients for each spec, client i in process i mod N (counting from what is open
   * already), `batch` at a time per process; resolves once every subscription has started.
   */
  async open(groups: { spec: SubscriptionSpec; count: number }[], batch = 50): Promise<{ opened: number; ms: number }> {
    type Group = { spec: SubscriptionSpec; count: number };
    const perProc = this.procs.map(() => [] as Group[]);
    let n = this.opened;
    for (const g of groups) {
      for (let i = 0; i < g.count; i++, n++) {
        const list = perProc[n % this.procs.length] as Group[];
        const last = list.at(-1);
        if (last && last.spec === g.spec) last.count++;
        else list.push({ spec: g.spec, count: 1 });
      }
    }
    const t0 = performance.now();
    const replies = await Promise.all(
      this.procs.map((p, i) => {
        const mine = perProc[i] as Group[];
        if (!mine.length) return Promise.resolve({ opened: 0 });
        return p.request(
          { kind: "open", url: this.options.url, token: this.options.token, groups: mine, batch },
          "opened",
        );
      }),
    );
    const opened = replies.reduce((s, r) => s + r.opened, 0);
    this.opened += opened;
    return { opened, ms: performance.now() - t0 };
  }

  /**
   * Collects, every 100 ms, the deliveries of the keys in `sent` until `expected` arrived or nothing
   * new arrived for 10 s: receive times per key, frames per topic, errors, and the client processes'
   * CPU time at the end.
   */
  async gather(sent: ReadonlyMap<string, unknown>, expected: number) {
    const arrivals = new Map<string, number[]>();
    const frames: Record<string, number> = {};
    const problems = { errors: [] as string[], unexpectedCloses: 0, connects: 0 };
    let clientCpuUs = 0;
    let got = 0;
    let idle = 0;
    do {
      const c = await this.collect();
      clientCpuUs = c.cpuUs;
      let fresh = 0;
      for (const [k, times] of c.arrivals) {
        if (!sent.has(k)) continue;
        fresh += times.length;
        const list = arrivals.get(k);
        if (list) list.push(...times);
        else arrivals.set(k, times);
      }
      got += fresh;
      for (const [t, n] of Object.entries(c.frames)) frames[t] = (frames[t] ?? 0) + n;
      problems.errors.push(...c.errors);
      problems.unexpectedCloses += c.unexpectedCloses;
      problems.connects = c.connects;
      idle = fresh ? 0 : idle + 1;
      if (got < expected) await sleep(100);
    } while (got < expected && idle < 100);
    return { arrivals, frames, problems, clientCpuUs };
  }

  /** Takes (and clears) what every process received since the last collect. */
  async collect(): Promise<Collected> {
    const replies = await Promise.all(this.procs.map((p) => p.request({ kind: "collect" }, "collected")));
    const out: Collected = {
      arrivals: new Map(),
      frames: {},
      errors: [],
      connects: 0,
      unexpectedCloses: 0,
      open: 0,
      cpuUs: 0,
    };
    for (const r of replies) {
      for (const [key, times] of r.arrivals) {
        const list = out.arrivals.get(key);
        if (list) for (const t of times) list.push(t);
        else out.arrivals.set(key, times);
      }
      for (const [topic, n] of Object.entries(r.frames)) out.frames[topic] = (out.frames[topic] ?? 0) + n;
      out.errors.push(...r.errors);
      out.connects += r.connects;
      out.unexpectedCloses += r.unexpectedCloses;
      out.open += r.open;
      out.cpuUs += r.cpuUs;
    }
    return out;
  }

  /**
   * Each process's clock offset from this one, NTP style over IPC: of `rounds` exchanges, the one
   * with the shortest round trip; the offset is known to ± half that round trip.
   */
  async clockOffsets(rounds = 20): Promise<{ offsetMs: number; rttMs: number }[]> {
    const out: { offsetMs: number; rttMs: number }[] = [];
    for (const p of this.procs) {
      let best = { offsetMs: Number.NaN, rttMs: Number.POSITIVE_INFINITY };
      for (let i = 0; i < rounds; i++) {
        const t0 = clock();
        const { at } = await p.request({ kind: "clock" }, "clock");
        const t1 = clock();
        if (t1 - t0 < best.rttMs) best = { offsetMs: at - (t0 + t1) / 2, rttMs: t1 - t0 };
      }
      out.push(best);
    }
    return out;
  }

  /** RSS of each client process. */
  async memory(): Promise<number[]> {
    return (await Promise.all(this.procs.map((p) => p.request({ kind: "memory" }, "memory")))).map((r) => r.rss);
  }

  /** Unsubscribes and closes every client. */
  async closeClients(): Promise<number> {
    const replies = await Promise.all(this.procs.map((p) => p.request({ kind: "close" }, "closed")));
    this.opened = 0;
    return replies.reduce((s, r) => s + r.closed, 0);
  }

  async stop(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.stop()));
  }
}

/** Latency of each delivery, from a commit's time to each receive time. */
export interface Sent {
  /** When the request that committed was issued. */
  issued: number;
  /** When its reply arrived: the commit happened before this. */
  returned: number;
  /** When the server committed it, when the server traced that (bench clock ± the offsets printed). */
  committed?: number;
}

export interface Latencies {
  delivered: number;
  /** Deliveries that arrived before the committing request's reply (counted as 0 ms from the reply). */
  early: number;
  fromReturn: Float64Array;
  fromIssue: Float64Array;
  /** From the commit, for the messages whose commit time is known. */
  fromCommit: Float64Array;
}

/** Matches receive times with the commits that produced them; keys not in `sent` are ignored. */
export function latencies(arrivals: Map<string, number[]>, sent: Map<string, Sent>): Latencies {
  const fromReturn: number[] = [];
  const fromIssue: number[] = [];
  const fromCommit: number[] = [];
  let early = 0;
  for (const [key, times] of arrivals) {
    const s = sent.get(key);
    if (!s) continue;
    for (const at of times) {
      if (at < s.returned) early++;
      fromReturn.push(Math.max(0, at - s.returned));
      fromIssue.push(at - s.issued);
      if (s.committed !== undefined) fromCommit.push(at - s.committed);
    }
  }
  return {
    delivered: fromReturn.length,
    early,
    fromReturn: Float64Array.from(fromReturn).sort(),
    fromIssue: Float64Array.from(fromIssue).sort(),
    fromCommit: Float64Array.from(fromCommit).sort(),
  };
}

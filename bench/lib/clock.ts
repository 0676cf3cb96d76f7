import os from "node:os";

/**
 * One clock for the bench process, the server process and every client process.
 *
 * `performance.timeOrigin` is the wall-clock time (microsecond resolution) at which this process
 * started; `performance.now()` is monotonic time since then. Their sum is a wall-clock reading with
 * sub-millisecond resolution that never steps inside a process, and processes on one machine share
 * the system clock they were anchored to, so readings taken in different processes can be subtracted.
 * The residual offset (clock slewed between two processes' starts) is measured by the bench over IPC
 * and printed (see WsClientPool.clockOffsets); `Date.now()` was not used because it has 1 ms resolution.
 */
export function clock(): number {
  return performance.timeOrigin + performance.now();
}

/** The load averages, as `uptime` prints them. */
export const loadAvg = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");

/** The bench's "machine:" line: cores, memory, Node, load, and the connection limits checked. */
export const machineLine = (limits: string) =>
  `machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, ` +
  `Node ${process.version}, load ${loadAvg()}; ${limits}`;

export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (!sorted.length) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

export const fmt = (n: number, digits = 1) => n.toFixed(digits);
export const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

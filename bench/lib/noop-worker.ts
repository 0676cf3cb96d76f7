/**
 * The no-op worker of bench/throughput.ts, in a process of its own so that its CPU time is charged to
 * neither side: answers every execute at once and records how long it held each request.
 *
 *   messages out: { type: "ready", url }
 *   in: { type: "times" } → out: { type: "times", ms: Record<id, ms>, received: Record<id, clock ms>, cpuMs }
 *   (received: when the request's first byte reached this process, on bench/lib/clock.ts's clock;
 *    cpuMs: the process's CPU since the previous "times")
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { clock } from "./clock.js";

let held: Record<string, number> = {};
let received: Record<string, number> = {};
let cpuAtLastTimes = 0;

const server = http.createServer((req, res) => {
  const at = clock();
  const t0 = performance.now();
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    if (req.url === "/health") {
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(JSON.stringify({ status: "ok", protocol: 1, capabilities: ["noop"], inFlight: 0 }));
    }
    const body = JSON.parse(Buffer.concat(chunks).toString()) as { taskId?: string; jobId?: string };
    const out = JSON.stringify({ status: "completed", summary: "nothing to do", artifacts: [] });
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(out) });
    res.end(out);
    const id = body.taskId ?? body.jobId ?? "";
    held[id] = performance.now() - t0;
    received[id] = at;
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  process.send?.({ type: "ready", url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
});
process.on("message", (m: { type: string }) => {
  if (m.type === "times") {
    const cpu = process.cpuUsage();
    const cpuMs = (cpu.user + cpu.system) / 1000;
    process.send?.({ type: "times", ms: held, received, cpuMs: cpuMs - cpuAtLastTimes });
    cpuAtLastTimes = cpuMs;
    held = {};
    received = {};
  }
});
process.on("disconnect", () => server.close(() => process.exit(0)));

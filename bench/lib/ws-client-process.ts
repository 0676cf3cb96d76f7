/**
 * A client process of the WebSocket benches (forked by WsClientPool, see ws-clients.ts): opens real tRPC
 * WebSocket clients (createWSClient + wsLink, token in connectionParams, superjson) and records, per
 * delivered item, the time its onData ran on this process's event loop (clock.ts), keyed so the bench
 * can match it with the commit that produced it.
 */
import { createTRPCClient, createWSClient, wsLink } from "@trpc/client";
import superjson from "superjson";
import WebSocket from "ws";
import type { AppRouter } from "../../src/server/router.js";
import { clock } from "./clock.js";
import type { ChildReply, ChildRequest, SubscriptionSpec } from "./ws-clients.js";

interface OpenClient {
  close(): Promise<void>;
}

const START_TIMEOUT_MS = 60_000;
const clients: OpenClient[] = [];
/** Receive times per key (chat: the message content; task events: "taskId type toState"). */
let arrivals = new Map<string, number[]>();
let frames: Record<string, number> = {};
let errors: string[] = [];
let connects = 0;
let unexpectedCloses = 0;

function record(key: string, at: number) {
  const list = arrivals.get(key);
  if (list) list.push(at);
  else arrivals.set(key, [at]);
}

function openClient(url: string, token: string, spec: SubscriptionSpec): Promise<OpenClient> {
  return new Promise((resolve, reject) => {
    let started = false;
    let closing = false;
    const ws = createWSClient({
      url,
      WebSocket: WebSocket as never,
      connectionParams: { token },
      onOpen: () => {
        connects++;
      },
      onClose: () => {
        if (started && !closing) unexpectedCloses++;
      },
    });
    const client = createTRPCClient<AppRouter>({ links: [wsLink({ client: ws, transformer: superjson })] });
    // A subscription that has not started after this long will not: say so rather than hang the run.
    const timer = setTimeout(() => {
      if (started) return;
      void ws.close();
      reject(new Error(`a ${spec.topic} subscription did not start within ${START_TIMEOUT_MS} ms`));
    }, START_TIMEOUT_MS);
    const onStarted = () => {
      clearTimeout(timer);
      started = true;
      resolve({
        close: () => {
          closing = true;
          sub.unsubscribe();
          return ws.close();
        },
      });
    };
    const onError = (err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      if (!started) reject(new Error(message));
      else if (errors.length < 20) errors.push(message);
    };
    const count = (topic: string) => {
      frames[topic] = (frames[topic] ?? 0) + 1;
    };
    const sub =
      spec.topic === "chat"
        ? client.chat.onMessage.subscribe(
            { sessionId: spec.sessionId },
            {
              onStarted,
              onError,
              onData: (d) => {
                const at = clock();
                count("chat");
                if (d.data.role === "operator") record(d.data.content, at);
              },
            },
          )
        : spec.topic === "tasks"
          ? client.tasks.onEvent.subscribe(spec.taskId ? { taskId: spec.taskId } : {}, {
              onStarted,
              onError,
              onData: (d) => {
                const at = clock();
                count("tasks");
                record(`${d.data.taskId} ${d.data.type} ${d.data.toState ?? ""}`, at);
              },
            })
          : client.metrics.live.subscribe(undefined, {
              onStarted,
              onError,
              onData: () => count("metrics"),
            });
  });
}

async function handle(req: ChildRequest): Promise<ChildReply> {
  switch (req.kind) {
    case "open": {
      const t0 = performance.now();
      const specs = req.groups.flatMap((g) => Array.from({ length: g.count }, () => g.spec));
      for (let i = 0; i < specs.length; i += req.batch) {
        const batch = specs.slice(i, i + req.batch).map((s) => openClient(req.url, req.token, s));
        clients.push(...(await Promise.all(batch)));
      }
      return { id: req.id, kind: "opened", opened: specs.length, ms: performance.now() - t0 };
    }
    case "collect": {
      const cpu = process.cpuUsage();
      const out = {
        arrivals,
        frames,
        errors,
        connects,
        unexpectedCloses,
        open: clients.length,
        cpuUs: cpu.user + cpu.system,
      };
      arrivals = new Map();
      frames = {};
      errors = [];
      return { id: req.id, kind: "collected", ...out };
    }
    case "clock":
      return { id: req.id, kind: "clock", at: clock() };
    case "memory": {
      const m = process.memoryUsage();
      return { id: req.id, kind: "memory", rss: m.rss };
    }
    case "close": {
      const all = clients.splice(0);
      await Promise.all(all.map((c) => c.close()));
      return { id: req.id, kind: "closed", closed: all.length };
    }
  }
}

process.on("message", (req: ChildRequest) => {
  handle(req).then(
    (reply) => process.send?.(reply),
    (err: unknown) =>
      process.send?.({ id: req.id, kind: "error", message: err instanceof Error ? err.message : String(err) }),
  );
});
// The bench went away: nothing left to report to.
process.on("disconnect", () => process.exit(0));
process.send?.({ id: 0, kind: "started" } satisfies ChildReply);

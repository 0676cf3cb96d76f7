import { randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";
import { createTRPCClient, httpBatchLink } from "@trpc/client";
import superjson from "superjson";
import { afterEach, describe, expect, it } from "vitest";
import type { AppRouter } from "../src/server/router.js";
import { tracesEndpoint } from "../src/server/telemetry/setup.js";
import { TERMINAL_STATES } from "../src/shared/task-state.js";
import { ATTR, SPAN } from "../src/shared/telemetry.js";
import { DATABASES } from "./helpers/databases.js";
import { ADMIN_TOKEN, startFaultWorker, waitFor } from "./helpers/fault-worker.js";
import { type Api, ServerHome } from "./helpers/server-process.js";

/**
 * OpenTelemetry traces of a task's path (issue #15), against a local OTLP/HTTP receiver, the real server
 * process and the real reference worker (or a worker that outlives a restart): one trace per task, spans
 * create → claim → attempt → try (→ the worker's run, through `traceparent`), council and end under the
 * attempt, with the task id, attempt, worker and outcome as attributes. A restart keeps the trace; with no
 * endpoint nothing is exported.
 */

type AttrValue = string | number | boolean;
interface ReceivedSpan {
  service: string;
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  kind: number;
  status: number;
  statusMessage: string;
  attributes: Record<string, AttrValue>;
}

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
  doubleValue?: number;
}
interface OtlpAttribute {
  key: string;
  value: OtlpValue;
}
interface OtlpRequest {
  resourceSpans?: {
    resource?: { attributes?: OtlpAttribute[] };
    scopeSpans?: {
      spans?: {
        traceId: string;
        spanId: string;
        parentSpanId?: string;
        name: string;
        kind: number;
        attributes?: OtlpAttribute[];
        status?: { code?: number; message?: string };
      }[];
    }[];
  }[];
}

const attributeValue = (v: OtlpValue): AttrValue =>
  v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : (v.boolValue ?? v.doubleValue ?? ""));
const attributesOf = (list: OtlpAttribute[] | undefined) =>
  Object.fromEntries((list ?? []).map((a) => [a.key, attributeValue(a.value)]));

/** A collector's OTLP/HTTP traces endpoint: POST /v1/traces with JSON, every span kept; every request counted. */
async function startReceiver() {
  const spans: ReceivedSpan[] = [];
  const requests: { method: string; url: string }[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      requests.push({ method: req.method ?? "", url: req.url ?? "" });
      if (req.method !== "POST" || req.url !== "/v1/traces") {
        res.writeHead(404).end();
        return;
      }
      let body = Buffer.concat(chunks);
      if (req.headers["content-encoding"] === "gzip") body = gunzipSync(body);
      const request = JSON.parse(body.toString("utf8")) as OtlpRequest;
      for (const rs of request.resourceSpans ?? []) {
        const service = String(attributesOf(rs.resource?.attributes)["service.name"] ?? "");
        for (const ss of rs.scopeSpans ?? []) {
          for (const s of ss.spans ?? []) {
            spans.push({
              service,
              name: s.name,
              traceId: s.traceId,
              spanId: s.spanId,
              parentSpanId: s.parentSpanId ?? "",
              kind: s.kind,
              status: s.status?.code ?? 0,
              statusMessage: s.status?.message ?? "",
              attributes: attributesOf(s.attributes),
            });
          }
        }
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    spans,
    requests,
    of: (taskId: string) => spans.filter((s) => s.attributes[ATTR.taskId] === taskId),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

const settled = (api: Api, id: string, timeoutMs = 120_000) =>
  waitFor(
    `task ${id} to settle`,
    () => api.tasks.get.query({ id }),
    (t) => TERMINAL_STATES.includes(t.state),
    timeoutMs,
  );

/** The caller's own trace: a tRPC client that sends `traceparent` with every request. */
function tracedClient(url: string, traceparent: string): Api {
  return createTRPCClient<AppRouter>({
    links: [
      httpBatchLink({
        url: `${url}/trpc`,
        transformer: superjson,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, traceparent },
      }),
    ],
  });
}

const OTEL_ENV = (endpoint: string) => ({
  OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
  // Exported within 100 ms of ending, so the test waits for spans, not for the SDK's 5 s default.
  OTEL_BSP_SCHEDULE_DELAY: "100",
});

const one = (spans: ReceivedSpan[], name: string, where: (s: ReceivedSpan) => boolean = () => true) => {
  const found = spans.filter((s) => s.name === name && where(s));
  expect(found, `${name}: ${JSON.stringify(spans.map((s) => [s.name, s.attributes]))}`).toHaveLength(1);
  return found[0] as ReceivedSpan;
};

const ERROR = 2;

describe.each(DATABASES)("OpenTelemetry traces on %s", (kind) => {
  it("a task's path is one trace: create → claim → attempt → try → the worker's run, council and end; each try a span", async () => {
    const receiver = await startReceiver();
    cleanups.push(() => receiver.close());
    // A second worker whose first answer is a 503: its attempt takes two tries.
    const flaky = await startFaultWorker({ script: ["503"], afterwards: "ok" });
    cleanups.push(() => flaky.close());
    const home = new ServerHome(kind, {
      ...OTEL_ENV(receiver.url),
      START_REFERENCE_WORKER: "1",
      WORKERS: `flaky=${flaky.url}|flaky|2`,
    });
    cleanups.push(() => home.dispose());
    const server = await home.start();
    expect(server.lines().some((l) => l.includes("OpenTelemetry traces are exported"))).toBe(true);

    const callerTrace = randomBytes(16).toString("hex");
    const callerSpan = randomBytes(8).toString("hex");
    const api = tracedClient(server.url, `00-${callerTrace}-${callerSpan}-01`);
    const { id } = await api.tasks.create.mutate({
      title: "traced script",
      input: { script: "printf 'traced\\n' > traced.txt" },
    });
    const task = await settled(server.api, id);
    expect(task.state, server.output()).toBe("accepted");

    const names = [SPAN.create, SPAN.claim, SPAN.attempt, SPAN.try, SPAN.workerRun, SPAN.council, SPAN.end];
    const spans = await waitFor(
      "every span of the task's path to be exported",
      async () => receiver.of(id),
      (got) => names.every((n) => got.some((s) => s.name === n)),
      60_000,
    );
    // The caller's trace: the task's spans join it.
    expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([callerTrace]));

    const create = one(spans, SPAN.create);
    expect(create.parentSpanId).toBe(callerSpan);
    expect(create.service).toBe("agent-agency");
    expect(create.attributes[ATTR.taskState]).toBe("queued");

    const claim = one(spans, SPAN.claim);
    expect(claim.parentSpanId).toBe(create.spanId);
    expect(claim.attributes).toMatchObject({ [ATTR.attempt]: 1, [ATTR.worker]: "reference" });

    const attempt = one(spans, SPAN.attempt);
    expect(attempt.parentSpanId).toBe(claim.spanId);
    expect(attempt.attributes).toMatchObject({
      [ATTR.attempt]: 1,
      [ATTR.worker]: "reference",
      [ATTR.reattached]: false,
      [ATTR.outcome]: "completed",
      [ATTR.verdict]: "accept",
      [ATTR.taskState]: "accepted",
      [ATTR.tries]: 1,
    });

    const tryOne = one(spans, SPAN.try);
    expect(tryOne.parentSpanId).toBe(attempt.spanId);
    expect(tryOne.attributes).toMatchObject({
      [ATTR.try]: 1,
      [ATTR.attempt]: 1,
      [ATTR.worker]: "reference",
      "http.response.status_code": 200,
    });

    // The worker's own span, from the traceparent the try sent.
    const run = one(spans, SPAN.workerRun);
    expect(run.service).toBe("agent-agency-worker");
    expect(run.parentSpanId).toBe(tryOne.spanId);
    expect(run.attributes).toMatchObject({ [ATTR.attempt]: 1, [ATTR.outcome]: "completed" });

    const council = one(spans, SPAN.council);
    expect(council.parentSpanId).toBe(attempt.spanId);
    expect(council.attributes[ATTR.verdict]).toBe("accept");

    const end = one(spans, SPAN.end);
    expect(end.parentSpanId).toBe(attempt.spanId);
    expect(end.attributes).toMatchObject({ [ATTR.outcome]: "completed", [ATTR.taskState]: "accepted" });
    expect(spans.every((s) => s.status !== ERROR)).toBe(true);

    // Without a caller's traceparent the task's trace starts at its creation; a try that failed is a failed span.
    const flakyTask = await server.api.tasks.create.mutate({ title: "traced retries", capability: "flaky" });
    expect((await settled(server.api, flakyTask.id)).state).toBe("accepted");
    const flakySpans = await waitFor(
      "the spans of the task with a retried try",
      async () => receiver.of(flakyTask.id),
      (got) => got.some((s) => s.name === SPAN.end) && got.filter((s) => s.name === SPAN.try).length === 2,
      60_000,
    );
    const root = one(flakySpans, SPAN.create);
    expect(root.parentSpanId).toBe("");
    expect(new Set(flakySpans.map((s) => s.traceId))).toEqual(new Set([root.traceId]));
    const flakyAttempt = one(flakySpans, SPAN.attempt);
    expect(flakyAttempt.attributes).toMatchObject({ [ATTR.worker]: "flaky", [ATTR.tries]: 2 });
    const tries = flakySpans
      .filter((s) => s.name === SPAN.try)
      .sort((a, b) => +a.attributes[ATTR.try]! - +b.attributes[ATTR.try]!);
    expect(tries.map((t) => t.parentSpanId)).toEqual([flakyAttempt.spanId, flakyAttempt.spanId]);
    expect(tries.map((t) => [t.attributes[ATTR.try], t.status, t.attributes["http.response.status_code"]])).toEqual([
      [1, ERROR, 503],
      [2, 0, 200],
    ]);
    expect(tries[0]?.attributes[ATTR.errorKind]).toBe("http");

    // An operator's cancel is a span of the task's trace; the worker's run ends canceled.
    const sleeper = await server.api.tasks.create.mutate({
      title: "traced cancel",
      input: { script: "echo sleeping; sleep 60" },
    });
    await waitFor(
      "the script to start",
      async () => (await server.api.tasks.events.query({ taskId: sleeper.id, limit: 100 })).items,
      (events) => events.some((e) => e.type === "log"),
      60_000,
    );
    const canceled = await server.api.tasks.cancel.mutate({ id: sleeper.id, reason: "not needed" });
    expect(canceled).toMatchObject({ state: "canceled", cancelConfirmed: true });
    const cancelSpans = await waitFor(
      "the cancel's spans",
      async () => receiver.of(sleeper.id),
      (got) => got.some((s) => s.name === SPAN.cancel) && got.some((s) => s.name === SPAN.workerRun),
      60_000,
    );
    const sleeperCreate = one(cancelSpans, SPAN.create);
    expect(new Set(cancelSpans.map((s) => s.traceId))).toEqual(new Set([sleeperCreate.traceId]));
    const cancel = one(cancelSpans, SPAN.cancel);
    expect(cancel.parentSpanId).toBe(sleeperCreate.spanId);
    expect(cancel.attributes).toMatchObject({ [ATTR.worker]: "reference", [ATTR.outcome]: "confirmed" });
    const sleeperRun = one(cancelSpans, SPAN.workerRun);
    expect(sleeperRun.parentSpanId).toBe(one(cancelSpans, SPAN.try).spanId);
    expect(sleeperRun.attributes).toMatchObject({ [ATTR.outcome]: "failed", [ATTR.errorKind]: "canceled" });
    expect(sleeperRun.status).toBe(ERROR);
  }, 400_000);

  it("a restart in the middle of a run keeps the trace: the next process's re-attached attempt is a child of the task's creation", async () => {
    const receiver = await startReceiver();
    cleanups.push(() => receiver.close());
    // A worker outside the server, so the run goes on while the server restarts.
    const worker = await startFaultWorker({ durationMs: 4_000 });
    cleanups.push(() => worker.close());
    const home = new ServerHome(kind, {
      ...OTEL_ENV(receiver.url),
      WORKERS: `outside=${worker.url}|script|4`,
      SHUTDOWN_GRACE_MS: "300",
    });
    cleanups.push(() => home.dispose());
    const first = await home.start();
    const { id } = await first.api.tasks.create.mutate({ title: "traced across a restart", input: { script: "true" } });
    await waitFor(
      "the worker to start the task",
      async () => worker.requests.filter((r) => r.taskId === id).length,
      (n) => n >= 1,
    );
    expect(await home.stop()).toBe(0);

    const second = await home.start();
    expect((await settled(second.api, id)).state).toBe("accepted");
    const spans = await waitFor(
      "the spans of both processes",
      async () => receiver.of(id),
      (got) => got.some((s) => s.name === SPAN.end) && got.filter((s) => s.name === SPAN.attempt).length === 2,
      60_000,
    );
    const create = one(spans, SPAN.create);
    expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([create.traceId]));
    const claim = one(spans, SPAN.claim);
    const handedBack = one(spans, SPAN.attempt, (s) => s.attributes[ATTR.reattached] === false);
    expect(handedBack.parentSpanId).toBe(claim.spanId);
    expect(handedBack.attributes[ATTR.outcome]).toBe("handed_back");
    // The second process knew the trace only from the task's row.
    const reattached = one(spans, SPAN.attempt, (s) => s.attributes[ATTR.reattached] === true);
    expect(reattached.parentSpanId).toBe(create.spanId);
    expect(reattached.attributes).toMatchObject({ [ATTR.attempt]: 1, [ATTR.outcome]: "completed" });
    const end = one(spans, SPAN.end);
    expect(end.parentSpanId).toBe(reattached.spanId);
    expect(end.attributes[ATTR.taskState]).toBe("accepted");
    expect(
      spans
        .filter((s) => s.name === SPAN.try)
        .every((t) => [handedBack.spanId, reattached.spanId].includes(t.parentSpanId)),
    ).toBe(true);
  }, 400_000);
});

describe("OpenTelemetry settings", () => {
  it("reads the standard variables: the traces endpoint, or off", () => {
    expect(tracesEndpoint({})).toBeNull();
    expect(tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318/" })).toBe(
      "http://127.0.0.1:4318/v1/traces",
    );
    expect(
      tracesEndpoint({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "https://collector.example/otlp/traces",
      }),
    ).toBe("https://collector.example/otlp/traces");
    expect(
      tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318", OTEL_SDK_DISABLED: "true" }),
    ).toBeNull();
    expect(
      tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318", OTEL_TRACES_EXPORTER: "none" }),
    ).toBeNull();
  });

  it("refuses an endpoint that is not an http(s) URL, and gRPC, with a message that says what to set", () => {
    expect(() => tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" })).toThrow(
      /OTEL_EXPORTER_OTLP_ENDPOINT must be an http\(s\) URL/,
    );
    expect(() => tracesEndpoint({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "not a url" })).toThrow(
      /OTEL_EXPORTER_OTLP_TRACES_ENDPOINT must be an http\(s\) URL/,
    );
    expect(() =>
      tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4317", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }),
    ).toThrow(/grpc is not supported/);
  });
});

describe("OpenTelemetry off", () => {
  it("with no endpoint: no exporter traffic, no trace kept or sent, no error", async () => {
    const receiver = await startReceiver();
    cleanups.push(() => receiver.close());
    const home = new ServerHome("pglite", { START_REFERENCE_WORKER: "1", OTEL_BSP_SCHEDULE_DELAY: "100" });
    cleanups.push(() => home.dispose());
    const server = await home.start();
    // A caller's traceparent is not kept either: nothing here traces.
    const api = tracedClient(server.url, `00-${randomBytes(16).toString("hex")}-${randomBytes(8).toString("hex")}-01`);
    const { id } = await api.tasks.create.mutate({ title: "untraced", input: { script: "printf 'x\\n' > x.txt" } });
    expect((await settled(server.api, id)).state, server.output()).toBe("accepted");
    expect(await home.stop()).toBe(0);

    expect(receiver.requests).toEqual([]);
    const lines = server.lines();
    expect(lines.filter((l) => /opentelemetry/i.test(l))).toEqual([]);
    expect(lines.filter((l) => /"level":(50|60)/.test(l))).toEqual([]);
    const db = await home.openDatabase();
    try {
      const [row] = await db.query<{ trace_parent: string | null }>(
        "SELECT trace_parent FROM tasks WHERE id = $1::uuid",
        [id],
      );
      expect(row).toEqual({ trace_parent: null });
    } finally {
      await db.close();
    }
  }, 400_000);
});

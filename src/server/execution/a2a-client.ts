import {
  A2A_PROTOCOL_VERSION,
  A2A_VERSION_HEADER,
  type Artifact as A2AArtifact,
  AGENT_CARD_PATH,
  type AgentCard,
  type Message,
  type SecurityScheme,
  type SendMessageRequest,
  type StreamResponse,
  type Task,
  TaskState,
} from "@a2a-js/sdk";
import {
  type Client,
  ClientFactory,
  ClientFactoryOptions,
  DefaultAgentCardResolver,
  JsonRpcTransportFactory,
  RestTransportFactory,
} from "@a2a-js/sdk/client";
import { A2AError, TaskNotFoundError } from "@a2a-js/sdk/errors";
import { toStorableText } from "../../shared/text.js";
import { type CancelRequest, type ExecuteResult, idempotencyKey } from "../../shared/worker-protocol.js";
import { traceHeaders } from "../telemetry/tracing.js";
import { assertAllowedWorkerUrl } from "../workers/allowlist.js";
import type { A2AAttempts, InputKind, RemoteTask } from "./a2a-attempts.js";
import {
  a2aStateName,
  answerMessage,
  cardAuth,
  INTERRUPTED_A2A_STATES,
  mergeArtifact,
  messageText,
  resultOf,
  resultOfMessage,
  TERMINAL_A2A_STATES,
  taskMessage,
} from "./a2a-mapping.js";
import { abortableDelay, formatDuration, parseRetryAfter } from "./backoff.js";
import { classifyCallError, WorkerCallError } from "./errors.js";
import type { ExecuteCall, WorkerTarget } from "./worker-client.js";

export interface A2ASettings {
  allowedHosts: readonly string[];
  /** WORKER_MAX_RESPONSE_BYTES: a JSON answer, or one server-sent event, is read no further than this. */
  maxResponseBytes: number;
  cancelTimeoutMs: number;
  healthTimeoutMs: number;
  /** A2A_POLL_INTERVAL_MS: how often `tasks/get` asks an agent that does not stream how its task is going. */
  pollIntervalMs: number;
}

/** The token as the worker's header wants it: the WorkerClient opens it (the only place a token is opened). */
export type TokenOpener = (worker: WorkerTarget) => string | null;

const SMALL_BODY_BYTES = 64 * 1024;
const MAX_ERROR_BODY = 500;

/**
 * The card's security schemes as the agent wrote them. The SDK's own server sends a card as its objects are
 * (`{ scheme: { $case, value } }`), which its resolver does not read back (it expects the proto-JSON
 * `{ httpAuthSecurityScheme: … }` and leaves an empty scheme): such entries are taken from the raw card.
 */
function withSchemesOf(card: AgentCard, raw: unknown): AgentCard {
  const rawSchemes = (raw as { securitySchemes?: Record<string, { scheme?: SecurityScheme["scheme"] }> } | null)
    ?.securitySchemes;
  if (!rawSchemes || typeof rawSchemes !== "object") return card;
  const schemes = { ...card.securitySchemes };
  for (const [name, entry] of Object.entries(rawSchemes)) {
    const s = entry?.scheme;
    if (schemes[name]?.scheme || !s || typeof s !== "object" || typeof s.$case !== "string" || !s.value) continue;
    schemes[name] = { scheme: s } as SecurityScheme;
  }
  return { ...card, securitySchemes: schemes };
}

/** `…/.well-known/agent-card.json`: the worker's URL when it names a JSON file, else that path under it. */
export function agentCardUrl(url: string): string {
  const u = new URL(url);
  if (u.pathname.endsWith(".json")) return u.toString();
  const prefix = u.pathname.endsWith("/") ? u.pathname : `${u.pathname}/`;
  return new URL(`${prefix}${AGENT_CARD_PATH}`, u).toString();
}

type CodedError = Error & { code?: unknown; cause?: unknown };
const hasCode = (err: unknown): boolean => {
  for (let e = err as CodedError | undefined, depth = 0; e && depth < 4; e = e.cause as CodedError, depth++) {
    if (typeof e.code === "string" && e.code && e.code !== "UND_ERR") return true;
  }
  return false;
};

/** A failed call to an agent as the retry policy and the breaker see it, the same way as a v1 worker's. */
function classify(err: unknown, workerName: string, signal: AbortSignal, phase: "reach" | "read"): WorkerCallError {
  if (err instanceof WorkerCallError) return err;
  if (signal.aborted) return classifyCallError(err, { workerName, signal });
  // An error the stream's reader met carries the cap's error as its cause.
  const cause = (err as CodedError | undefined)?.cause;
  if (cause instanceof WorkerCallError) return cause;
  if (err instanceof A2AError) {
    return new WorkerCallError("protocol", `Worker ${workerName} (A2A) refused the call: ${firstLine(err.message)}`, {
      retryable: false,
      countsAgainstWorker: false,
    });
  }
  if (hasCode(err)) return classifyCallError(err, { workerName, phase, signal });
  if (
    err instanceof Error &&
    !(err instanceof TypeError || err instanceof RangeError || err instanceof ReferenceError)
  ) {
    return new WorkerCallError(
      "protocol",
      `Worker ${workerName} (A2A) answered outside the protocol: ${firstLine(err.message)}`,
      { retryable: false, countsAgainstWorker: true },
    );
  }
  return classifyCallError(err, { workerName, phase, signal });
}

const firstLine = (s: string) => toStorableText((s.split("\n")[0] ?? "").slice(0, 300));

function tooLarge(message: string): WorkerCallError {
  return new WorkerCallError("too_large", message, { retryable: false, countsAgainstWorker: true });
}

function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(n % (1024 * 1024) ? 1 : 0)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(n % 1024 ? 1 : 0)} KiB`;
  return `${n} bytes`;
}

/**
 * A body read no further than its cap: a JSON answer as a whole, a server-sent event stream event by event
 * (the bytes since the last blank line). Past it the stream errors with a `too_large` error and the rest is
 * not read. Every chunk counts as the agent's activity (the idle timeout).
 */
function capped(res: Response, limit: number, workerName: string, onActivity: () => void): Response {
  if (!res.body) return res;
  const sse = (res.headers.get("content-type") ?? "").startsWith("text/event-stream");
  let count = 0;
  let newline = false;
  const counter = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, ctrl) {
      onActivity();
      if (!sse) count += chunk.length;
      else {
        for (const byte of chunk) {
          if (byte === 10) {
            if (newline) count = 0;
            newline = true;
          } else if (byte !== 13) {
            newline = false;
            count++;
          }
          if (count > limit) break;
        }
      }
      if (count > limit) {
        ctrl.error(
          tooLarge(
            `Worker ${workerName}'s ${sse ? "stream event" : "answer"} exceeded WORKER_MAX_RESPONSE_BYTES (${formatBytes(limit)}); the rest was not read.`,
          ),
        );
        return;
      }
      ctrl.enqueue(chunk);
    },
  });
  return new Response(res.body.pipeThrough(counter), {
    status: res.status,
    statusText: res.statusText,
    headers: res.headers,
  });
}

/** An HTTP answer the retry policy decides on as for a v1 worker: 408, 429 and 5xx retried, 401 and 403 not. */
async function httpError(res: Response, workerName: string): Promise<WorkerCallError> {
  let body = "";
  try {
    const reader = res.body?.getReader();
    let read = 0;
    const parts: Uint8Array[] = [];
    while (reader && read < SMALL_BODY_BYTES) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
      read += value.length;
    }
    await reader?.cancel().catch(() => undefined);
    body = Buffer.concat(parts).toString("utf8");
  } catch {
    body = "";
  }
  const s = res.status;
  const retryable = s === 408 || s === 429 || s >= 500;
  const text = toStorableText(body.slice(0, MAX_ERROR_BODY).trim());
  return new WorkerCallError(
    "http",
    `Worker ${workerName} answered HTTP ${s}${text ? `: ${text}` : ""}${retryable ? "" : " (not retried)"}`,
    {
      status: s,
      retryable,
      countsAgainstWorker: s >= 500,
      retryAfterMs: retryable ? parseRetryAfter(res.headers.get("retry-after")) : undefined,
    },
  );
}

interface Hooks {
  onActivity(): void;
}

/** Statuses an agent answers that are not A2A's own errors: decided here, as for a v1 worker. */
const HTTP_DECIDED = (s: number) => s === 401 || s === 403 || s === 408 || s === 429 || s >= 500;

/** Where an attempt's A2A task stands, as the events and answers seen so far say. */
interface Progress {
  remote: RemoteTask | null;
  state: TaskState | undefined;
  status: Task["status"];
  artifacts: A2AArtifact[];
  logs: string[];
  /** The agent answered with a message instead of a task: the work is done. */
  message: Message | null;
}

/**
 * Drives Agent2Agent agents with the official client (`@a2a-js/sdk`), behind the same execute / cancel contract
 * as a protocol v1 worker: WorkerClient runs each try through the worker's breaker and retries it, and this
 * class makes one try. A try sends the task as a message (streamed with `message/stream` when the card says
 * the agent streams, else `message/send` and `tasks/get` polls), or, when the attempt already has an A2A task
 * (a retried try, a re-attach after a restart), resubscribes to it or asks for it instead of starting over.
 * Every request goes through one fetch: the allowlist, the worker's token in the header its card names, the
 * response caps and the idle timeout.
 */
export class A2AClient {
  /** The agent's task per attempt (`taskId:attempt`), known in this process. */
  private readonly remotes = new Map<string, RemoteTask>();
  /** Each worker's card as last read here. */
  private readonly cards = new Map<string, { url: string; card: AgentCard }>();

  constructor(
    private readonly settings: A2ASettings,
    private readonly tokenOf: TokenOpener,
    private attempts: A2AAttempts | null = null,
  ) {}

  /** The attempts store: set once services are composed (it needs the unit-of-work runner). */
  attachAttempts(attempts: A2AAttempts): void {
    this.attempts = attempts;
  }

  private fetchFor(worker: WorkerTarget, card: AgentCard | null, hooks: Hooks): typeof fetch {
    const auth = card ? cardAuth(card) : null;
    return async (input, init) => {
      const url = typeof input === "string" ? input : input instanceof URL ? input.toString() : input.url;
      try {
        assertAllowedWorkerUrl(url, this.settings.allowedHosts);
      } catch (err) {
        throw new WorkerCallError("not_allowed", `Worker ${worker.name} (A2A): ${(err as Error).message}`, {
          retryable: false,
          countsAgainstWorker: false,
        });
      }
      const headers = new Headers(init?.headers);
      // The caller's trace (the try's span, or the cancel's): the agent's work joins it.
      for (const [k, v] of Object.entries(traceHeaders())) headers.set(k, v);
      const token = this.tokenOf(worker);
      if (token) headers.set(auth?.header ?? "authorization", `${auth?.prefix ?? "Bearer "}${token}`);
      const res = await fetch(url, { ...init, headers });
      hooks.onActivity();
      if (!res.ok && HTTP_DECIDED(res.status)) throw await httpError(res, worker.name);
      return capped(res, this.settings.maxResponseBytes, worker.name, hooks.onActivity);
    };
  }

  /** Reads the worker's Agent Card (allowlisted, capped, authenticated when it has a token) and keeps it. */
  async card(
    worker: WorkerTarget,
    signal?: AbortSignal,
    timeoutMs = this.settings.healthTimeoutMs,
  ): Promise<AgentCard> {
    const timeout = AbortSignal.timeout(timeoutMs);
    const both = signal ? AbortSignal.any([signal, timeout]) : timeout;
    const url = (() => {
      try {
        return agentCardUrl(worker.url);
      } catch {
        throw new WorkerCallError("not_allowed", `Worker URL "${worker.url}" is not a valid URL.`, {
          retryable: false,
          countsAgainstWorker: false,
        });
      }
    })();
    const fetchImpl = this.fetchFor(worker, null, { onActivity: () => undefined });
    const resolver = new DefaultAgentCardResolver({ legacyCompat: { enabled: true } });
    let card: AgentCard;
    try {
      const res = await fetchImpl(url, { headers: { [A2A_VERSION_HEADER]: A2A_PROTOCOL_VERSION }, signal: both });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const raw = (await res.json()) as unknown;
      card = withSchemesOf(resolver.normalizeAgentCard(raw), raw);
    } catch (err) {
      if (timeout.aborted && !signal?.aborted) {
        throw new WorkerCallError(
          "timeout",
          `Worker ${worker.name}'s Agent Card got no answer within ${timeoutMs} ms.`,
          { retryable: true, countsAgainstWorker: true },
        );
      }
      const e = classify(err, worker.name, both, "read");
      throw e.kind === "protocol"
        ? new WorkerCallError("protocol", `Worker ${worker.name}'s Agent Card at ${url}: ${e.message}`, {
            retryable: false,
            countsAgainstWorker: true,
          })
        : e;
    }
    if (!card.supportedInterfaces.length) {
      throw new WorkerCallError("protocol", `Worker ${worker.name}'s Agent Card names no interface to call.`, {
        retryable: false,
        countsAgainstWorker: true,
      });
    }
    for (const i of card.supportedInterfaces) {
      try {
        assertAllowedWorkerUrl(i.url, this.settings.allowedHosts);
      } catch (err) {
        throw new WorkerCallError(
          "not_allowed",
          `Worker ${worker.name}'s Agent Card names ${i.url}: ${(err as Error).message}`,
          { retryable: false, countsAgainstWorker: false },
        );
      }
    }
    this.cards.set(worker.id, { url: worker.url, card });
    if (this.cards.size > 10_000) this.cards.clear();
    return card;
  }

  private async cardFor(worker: WorkerTarget, signal: AbortSignal): Promise<AgentCard> {
    const known = this.cards.get(worker.id);
    return known && known.url === worker.url ? known.card : this.card(worker, signal);
  }

  private async clientFor(worker: WorkerTarget, card: AgentCard, hooks: Hooks): Promise<Client> {
    const fetchImpl = this.fetchFor(worker, card, hooks);
    const factory = new ClientFactory(
      ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
        transports: [
          new JsonRpcTransportFactory({ fetchImpl, legacyCompat: { enabled: true } }),
          new RestTransportFactory({ fetchImpl, legacyCompat: { enabled: true } }),
        ],
        clientConfig: { polling: true },
      }),
    );
    return factory.createFromAgentCard(card);
  }

  private remember(key: string, remote: RemoteTask): void {
    if (this.remotes.size >= 10_000) this.remotes.clear();
    this.remotes.set(key, remote);
  }

  private async remoteOf(taskId: string, attempt: number): Promise<RemoteTask | null> {
    return this.remotes.get(`${taskId}:${attempt}`) ?? (await this.attempts?.remoteOf(taskId, attempt)) ?? null;
  }

  /**
   * One try of an attempt on an A2A worker. The try's idle timeout (the tier's tryTimeoutMs) restarts on every
   * byte the agent sends and is held while the agent waits for an operator's answer; `signal` (cancel, shutdown,
   * the task's deadline) ends it anywhere.
   */
  async tryExecute(call: ExecuteCall, signal: AbortSignal): Promise<ExecuteResult> {
    const { worker, request, policy } = call;
    const key = `${request.taskId}:${request.attempt}`;
    const ctrl = new AbortController();
    const onOuterAbort = () => ctrl.abort(signal.reason);
    if (signal.aborted) throw classifyCallError(signal.reason, { workerName: worker.name, signal });
    signal.addEventListener("abort", onOuterAbort, { once: true });
    let phase: "reach" | "read" = "reach";
    let idle: NodeJS.Timeout | undefined;
    let waiting = false;
    const armIdle = () => {
      clearTimeout(idle);
      if (waiting) return;
      idle = setTimeout(() => {
        ctrl.abort(
          new WorkerCallError(
            "timeout",
            `${phase === "reach" ? "No answer from" : "Nothing from"} worker ${worker.name} for ${formatDuration(policy.tryTimeoutMs)} (tier ${request.spec.riskTier}'s idle timeout per try).`,
            { retryable: true, countsAgainstWorker: true },
          ),
        );
      }, policy.tryTimeoutMs);
    };
    armIdle();
    const hooks: Hooks = {
      onActivity: () => {
        phase = "read";
        armIdle();
      },
    };
    const startedAt = Date.now();
    const p: Progress = {
      remote: null,
      state: undefined,
      status: undefined,
      artifacts: [],
      logs: [],
      message: null,
    };
    const opts = { signal: ctrl.signal };
    try {
      const card = await this.cardFor(worker, ctrl.signal);
      const client = await this.clientFor(worker, card, hooks);
      const streaming = card.capabilities?.streaming === true;
      p.remote = await this.remoteOf(request.taskId, request.attempt);

      const note = (line: string) => {
        const text = toStorableText(line).slice(0, 10_000);
        p.logs.push(text);
        if (p.logs.length > 10_000) p.logs.shift();
        call.onLine?.({ type: "log", stream: "info", line: text });
      };
      const setRemote = async (taskId: string, contextId: string) => {
        if (!taskId || p.remote?.taskId === taskId) return;
        p.remote = { taskId, contextId };
        this.remember(key, p.remote);
        await this.attempts?.record(request.taskId, request.attempt, p.remote);
      };
      const setStatus = (status: Task["status"]) => {
        const before = p.state;
        p.status = status;
        p.state = status?.state;
        if (p.state !== before) call.onLine?.({ type: "progress", message: `A2A task ${a2aStateName(p.state)}` });
        const said = messageText(status?.message);
        if (said && !INTERRUPTED_A2A_STATES.includes(p.state as TaskState)) note(said);
      };
      const applyTask = async (t: Task) => {
        await setRemote(t.id, t.contextId);
        p.artifacts = [...t.artifacts];
        setStatus(t.status);
      };
      const apply = async (ev: StreamResponse) => {
        const e = ev.payload;
        if (!e) return;
        if (e.$case === "task") await applyTask(e.value);
        else if (e.$case === "message") {
          if (e.value.taskId) {
            await setRemote(e.value.taskId, e.value.contextId);
            note(messageText(e.value));
          } else p.message = e.value;
        } else if (e.$case === "statusUpdate") {
          await setRemote(e.value.taskId, e.value.contextId);
          setStatus(e.value.status);
        } else if (e.$case === "artifactUpdate") {
          await setRemote(e.value.taskId, e.value.contextId);
          if (e.value.artifact) mergeArtifact(p.artifacts, e.value.artifact, e.value.append);
        }
      };
      const consume = async (events: AsyncGenerator<StreamResponse, void, undefined>) => {
        for await (const ev of events) {
          await apply(ev);
          if (p.message) return;
        }
      };
      const send = async (message: Message) => {
        const params: SendMessageRequest = {
          tenant: "",
          message,
          configuration: {
            acceptedOutputModes: [],
            taskPushNotificationConfig: undefined,
            returnImmediately: !streaming,
          },
          metadata: { idempotencyKey: idempotencyKey(request.taskId, request.attempt) },
        };
        if (streaming) await consume(client.sendMessageStream(params, opts));
        else {
          const r = await client.sendMessage(params, opts);
          if ("messageId" in r) {
            if (r.taskId) await setRemote(r.taskId, r.contextId);
            else p.message = r;
          } else await applyTask(r);
        }
      };
      /** Follows the attempt's A2A task as it is now: resubscribed to when the agent streams, else asked for. */
      const follow = async (remote: RemoteTask) => {
        if (streaming) {
          try {
            await consume(client.resubscribeTask({ tenant: "", id: remote.taskId }, opts));
            return;
          } catch (err) {
            // A task that already ended cannot be subscribed to: what it ended with is asked for below.
            if (!(err instanceof A2AError) || err instanceof TaskNotFoundError) throw err;
          }
        }
        await applyTask(await client.getTask({ tenant: "", id: remote.taskId }, opts));
      };

      if (p.remote) {
        note(`Following the agent's task ${p.remote.taskId} again (${streaming ? "resubscribed" : "polled"}).`);
        try {
          await follow(p.remote);
        } catch (err) {
          if (!(err instanceof TaskNotFoundError)) throw err;
          // The agent does not know the task (it restarted without keeping its tasks): nothing of it runs, so
          // the attempt's message is sent again, as a new task.
          note(`The agent no longer knows its task ${p.remote.taskId}; the task is sent again.`);
          await this.attempts?.forget(request.taskId, request.attempt);
          this.remotes.delete(key);
          p.remote = null;
        }
      }
      if (!p.remote && !p.message) {
        const contextId = request.critique
          ? (await this.attempts?.remoteOf(request.taskId, request.critique.fromAttempt))?.contextId
          : undefined;
        await send(
          taskMessage(request, {
            messageId: idempotencyKey(request.taskId, request.attempt),
            ...(contextId ? { contextId } : {}),
          }),
        );
      }

      let answeredStatus: string | null = null;
      for (;;) {
        if (p.message) return resultOfMessage(p.message, startedAt);
        if (p.state !== undefined && TERMINAL_A2A_STATES.includes(p.state)) {
          this.remotes.delete(key);
          return resultOf({ status: p.status, artifacts: p.artifacts }, p.artifacts, p.logs, startedAt);
        }
        const remote = p.remote;
        if (!remote) {
          throw new WorkerCallError(
            "protocol",
            `Worker ${worker.name} (A2A) answered with neither a task nor a message.`,
            { retryable: false, countsAgainstWorker: true },
          );
        }
        // The status an answer was sent for can still be what the agent reports for a moment (a non-streaming
        // send returns at once): that is not a new question, the task is asked again below.
        const statusKey = `${p.state}|${p.status?.timestamp ?? ""}|${messageText(p.status?.message)}`;
        if (p.state !== undefined && INTERRUPTED_A2A_STATES.includes(p.state) && statusKey !== answeredStatus) {
          const kind: InputKind = p.state === TaskState.TASK_STATE_AUTH_REQUIRED ? "auth-required" : "input-required";
          const question =
            toStorableText(messageText(p.status?.message)) ||
            (kind === "auth-required" ? "The agent needs authentication to go on." : "The agent needs input to go on.");
          if (!this.attempts) {
            throw new WorkerCallError("protocol", `Worker ${worker.name} (A2A) asked for input: ${question}`, {
              retryable: false,
              countsAgainstWorker: false,
            });
          }
          await this.attempts.ask(request.taskId, request.attempt, kind, question);
          // Waiting on a person, not on the agent: the idle timeout is held; cancel and the deadline still apply.
          waiting = true;
          clearTimeout(idle);
          let answer: string;
          try {
            answer = await this.attempts.waitForAnswer(request.taskId, request.attempt, ctrl.signal);
          } finally {
            waiting = false;
            armIdle();
          }
          note("An operator answered the agent's question; the answer is sent to the agent.");
          answeredStatus = statusKey;
          await send(answerMessage(answer, remote));
          await this.attempts.settle(request.taskId, request.attempt);
          continue;
        }
        if (streaming) {
          // The stream closed before the task ended: the next try resubscribes to the task (not a new one).
          throw new WorkerCallError(
            "network",
            `Worker ${worker.name}'s stream ended before its A2A task ${remote.taskId} finished (it was ${a2aStateName(p.state)}).`,
            { retryable: true, countsAgainstWorker: true },
          );
        }
        await abortableDelay(this.settings.pollIntervalMs, ctrl.signal);
        await applyTask(await client.getTask({ tenant: "", id: remote.taskId }, opts));
      }
    } catch (err) {
      throw classify(err, worker.name, ctrl.signal, phase);
    } finally {
      clearTimeout(idle);
      signal.removeEventListener("abort", onOuterAbort);
      if (!ctrl.signal.aborted) ctrl.abort();
    }
  }

  /**
   * `tasks/cancel` on the attempt's A2A task. Confirmed when the agent reports the task `canceled` (asked
   * again until the cancel timeout), or ended otherwise already (nothing runs), or unknown to it.
   */
  async cancel(worker: WorkerTarget, body: CancelRequest): Promise<{ confirmed: boolean; detail: string }> {
    const timeout = AbortSignal.timeout(this.settings.cancelTimeoutMs);
    let remote: RemoteTask | null = null;
    try {
      remote = await this.remoteOf(body.taskId, body.attempt);
      if (!remote) return { confirmed: false, detail: "no A2A task of the agent's is known for this attempt" };
      const card = await this.cardFor(worker, timeout);
      const client = await this.clientFor(worker, card, { onActivity: () => undefined });
      const opts = { signal: timeout };
      let task: Task;
      try {
        task = await client.cancelTask({ tenant: "", id: remote.taskId, metadata: { reason: body.reason } }, opts);
      } catch (err) {
        if (err instanceof TaskNotFoundError)
          return { confirmed: true, detail: `the agent does not know task ${remote.taskId}` };
        if (!(err instanceof A2AError)) throw err;
        // Not cancelable: it may have ended meanwhile, which is asked for below.
        task = await client.getTask({ tenant: "", id: remote.taskId }, opts);
      }
      for (;;) {
        const state = task.status?.state;
        if (state === TaskState.TASK_STATE_CANCELED) {
          return { confirmed: true, detail: `the agent reported task ${remote.taskId} canceled` };
        }
        if (state !== undefined && TERMINAL_A2A_STATES.includes(state)) {
          return { confirmed: true, detail: `task ${remote.taskId} had already ended ${a2aStateName(state)}` };
        }
        await abortableDelay(this.settings.pollIntervalMs, timeout);
        task = await client.getTask({ tenant: "", id: remote.taskId }, opts);
      }
    } catch (err) {
      if (timeout.aborted) {
        return {
          confirmed: false,
          detail: `the agent did not report task ${remote?.taskId ?? "?"} canceled within ${this.settings.cancelTimeoutMs} ms`,
        };
      }
      return { confirmed: false, detail: classify(err, worker.name, timeout, "reach").message };
    } finally {
      this.remotes.delete(`${body.taskId}:${body.attempt}`);
    }
  }
}

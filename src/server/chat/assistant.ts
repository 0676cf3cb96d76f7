import type { TaskLink } from "../../shared/chat.js";
import type { MetricsSnapshot } from "../../shared/metrics.js";
import type { Actor } from "../../shared/roles.js";
import { taskFilterSchema } from "../../shared/task-list.js";
import { LIMITS, taskSpecSchema } from "../../shared/task-spec.js";
import { countOf } from "../../shared/text.js";
import { PROTOCOL_VERSION } from "../../shared/worker-protocol.js";
import type { Database } from "../db/database.js";
import type { Worker } from "../db/generated/client.js";
import { DomainError } from "../errors.js";
import type { WorkerClient } from "../execution/worker-client.js";
import type { TaskService } from "../tasks/service.js";
import { toTarget } from "../workers/service.js";
import { type Command, helpText } from "./commands.js";

/** What answering through a chat worker needs of it. */
type ChatWorker = Pick<Worker, "id" | "name" | "url" | "token" | "protocol">;

export interface Reply {
  content: string;
  links: TaskLink[];
}

export interface AssistantDeps {
  db: Database;
  tasks: TaskService;
  metrics: { read(): Promise<MetricsSnapshot> };
  client: WorkerClient;
  /** Answers an A2A agent's question on a task (tasks.answer). */
  answer(caller: { actor: Actor }, taskId: string, text: string): Promise<{ id: string; attempt: number }>;
  /** Approves or rejects a task awaiting approval (tasks.approve / tasks.reject). */
  approvals: {
    approve(actor: Actor, id: string, note: string | undefined): Promise<{ state: string; waitedMs: number }>;
    reject(actor: Actor, id: string, note: string): Promise<{ state: string; waitedMs: number }>;
  };
  /** Breaker state by worker id (the registry's view, "tripped" included). */
  breakerOf(workerId: string): Promise<string>;
  workerTimeoutMs: number;
}

const pct = (r: number | null) => (r === null ? "n/a" : `${Math.round(r * 100)}%`);
/** 45 s, 12 min, 3 h 5 min: how long a task waited for approval. */
function waitDuration(v: number): string {
  const s = Math.round(v / 1000);
  if (s < 60) return `${s} s`;
  const min = Math.floor(s / 60);
  if (min < 60) return `${min} min`;
  return `${Math.floor(min / 60)} h ${min % 60} min`;
}
const ms = (v: number | null) => (v === null ? "n/a" : v >= 1000 ? `${(v / 1000).toFixed(1)} s` : `${v} ms`);

/** Runs the assistant's commands with the sender's identity, through the same services as the API. */
export class Assistant {
  constructor(private readonly deps: AssistantDeps) {}

  async run(actor: Actor, command: Command): Promise<Reply> {
    try {
      return await this.dispatch(actor, command);
    } catch (err) {
      if (err instanceof DomainError) return { content: `Could not do that: ${err.message}`, links: [] };
      throw err;
    }
  }

  private async dispatch(actor: Actor, c: Command): Promise<Reply> {
    switch (c.name) {
      case "help":
        return { content: helpText(), links: [] };
      case "status":
        return this.status();
      case "tasks": {
        const filter = taskFilterSchema.parse(c.state ? { states: [c.state] } : {});
        const { items } = await this.deps.tasks.list(filter, 10);
        if (items.length === 0) return { content: c.state ? `No ${c.state} tasks.` : "No tasks yet.", links: [] };
        const lines = items.map((t) => `• ${t.title} — ${t.state} (${t.id.slice(0, 8)})`);
        return {
          content: [`Latest ${c.state ? `${c.state} ` : ""}tasks:`, ...lines].join("\n"),
          links: items.map((t) => ({ taskId: t.id, title: t.title })),
        };
      }
      case "task": {
        const spec = taskSpecSchema.parse({ title: c.title, input: { script: c.script } });
        const task = await this.deps.tasks.create(actor, spec);
        return {
          content: `Submitted "${task.title}" (${task.capability}, ${task.priority} priority, risk tier ${task.riskTier}); it is ${task.state}.`,
          links: [{ taskId: task.id, title: task.title }],
        };
      }
      case "cancel": {
        const id = await this.resolve(c.ref);
        const task = await this.deps.tasks.cancel(actor, id, c.reason ?? `Canceled from chat by ${actor.name}`);
        const unconfirmed = task.cancelConfirmed === false ? " The worker did not confirm it stopped." : "";
        return {
          content: `Canceled "${task.title}": it is ${task.state}.${unconfirmed}`,
          links: [{ taskId: task.id, title: task.title }],
        };
      }
      case "answer": {
        const id = await this.resolve(c.ref);
        const { attempt } = await this.deps.answer({ actor }, id, c.text);
        return {
          content: `Answered the agent's question on attempt ${attempt}; the answer is on its way to the agent.`,
          links: [{ taskId: id, title: `Task ${id.slice(0, 8)}` }],
        };
      }
      case "approve":
      case "reject": {
        const id = await this.resolve(c.ref);
        const { state, waitedMs } =
          c.name === "approve"
            ? await this.deps.approvals.approve(actor, id, c.note ?? undefined)
            : await this.deps.approvals.reject(actor, id, c.note);
        const done = c.name === "approve" ? "Approved" : "Rejected";
        return {
          content: `${done} task ${id.slice(0, 8)} after ${waitDuration(waitedMs)} awaiting approval: it is ${state}.`,
          links: [{ taskId: id, title: `Task ${id.slice(0, 8)}` }],
        };
      }
      case "retry": {
        const id = await this.resolve(c.ref);
        const task = await this.deps.tasks.retry(actor, id);
        return {
          content: `"${task.title}" is ${task.state} again for a new attempt.`,
          links: [{ taskId: task.id, title: task.title }],
        };
      }
    }
  }

  private async status(): Promise<Reply> {
    const m = await this.deps.metrics.read();
    const lines = [
      `Queue: ${m.queueDepth} waiting, ${m.running} running, ${m.awaitingApproval} awaiting approval${m.oldestApprovalWaitMs === null ? "" : ` (oldest ${waitDuration(m.oldestApprovalWaitMs)})`}.`,
      `Last minute: ${m.completedPerMin} completed, ${countOf(m.retriesPerMin, "retry", "retries")}.`,
      `Window (${Math.round(m.windowMs / 60_000)} min): success ${pct(m.successRate)}, attempt errors ${pct(m.errorRate)}, execution p95 ${ms(m.executionMs.p95)}, queue wait p95 ${ms(m.queueWaitMs.p95)}.`,
    ];
    if (m.workers.length === 0) lines.push("No workers are registered.");
    else {
      lines.push("Workers:");
      for (const w of m.workers) {
        lines.push(
          `• ${w.name}: breaker ${w.breaker.replace("_", "-")}, ${w.inFlight}/${w.maxConcurrency} in flight, health ${w.health}${w.enabled ? "" : ", disabled"}`,
        );
      }
    }
    return { content: lines.join("\n"), links: [] };
  }

  /** A full id, or the unique task whose id starts with the given 8+ characters. */
  private async resolve(ref: string): Promise<string> {
    const rows = await this.deps.db.query<{ id: string }>(
      `SELECT id::text AS id FROM tasks WHERE id::text LIKE $1 ORDER BY seq DESC LIMIT 2`,
      [`${ref.replace(/[%_]/g, "")}%`],
    );
    if (rows.length === 0) throw new DomainError("NOT_FOUND", `No task id starts with ${ref}.`);
    if (rows.length > 1)
      throw new DomainError("BAD_REQUEST", `More than one task id starts with ${ref}; give more of it.`);
    return (rows[0] as { id: string }).id;
  }

  /** An enabled, active (not paused or draining) worker with the `chat` capability whose breaker lets calls through, if any. */
  async chatWorker() {
    // Plain SQL: every free-text message asks.
    const candidates = await this.deps.db.query<ChatWorker>(
      `SELECT id, name, url, token, protocol FROM workers
        WHERE enabled AND NOT tripped AND dispatch_state = 'active' AND 'chat' = ANY(capabilities) ORDER BY name`,
    );
    for (const w of candidates) if ((await this.deps.breakerOf(w.id)) === "closed") return w;
    return null;
  }

  /**
   * Sends the conversation to a chat worker (protocol v1, `spec.input.messages`) and reports the
   * text as it streams: every NDJSON log line, then the result's summary if nothing streamed.
   */
  async converse(
    worker: ChatWorker,
    call: { replyId: string; sessionTitle: string; messages: { role: string; author: string; content: string }[] },
    onText: (textSoFar: string) => void,
    signal: AbortSignal,
  ): Promise<{ ok: boolean; text: string }> {
    let text = "";
    const timeout = this.deps.workerTimeoutMs;
    const deadline = Date.now() + timeout;
    const last = call.messages.at(-1);
    const spec = taskSpecSchema.parse({
      title: `Chat: ${call.sessionTitle}`.slice(0, LIMITS.title),
      description: (last?.content ?? "").slice(0, LIMITS.description),
      capability: "chat",
      mode: "chore",
      input: { kind: "chat", messages: fitMessages(call.messages) },
    });
    try {
      const outcome = await this.deps.client.execute({
        worker: toTarget(worker),
        request: {
          protocol: PROTOCOL_VERSION,
          taskId: call.replyId,
          attempt: 1,
          spec,
          deadline: new Date(deadline).toISOString(),
        },
        policy: { attempts: 1, tries: 2, tryTimeoutMs: timeout, deadlineMs: timeout },
        deadline,
        signal,
        onLine: (line) => {
          if (line.type !== "log") return;
          text += `${text ? "\n" : ""}${line.line}`;
          onText(text);
        },
      });
      const r = outcome.result;
      if (r.status === "failed") {
        const why = r.error?.message ?? r.summary;
        return { ok: false, text: `${text ? `${text}\n\n` : ""}The chat worker ${worker.name} failed: ${why}` };
      }
      return { ok: true, text: text || r.summary };
    } catch (err) {
      return {
        ok: false,
        text: `${text ? `${text}\n\n` : ""}The chat worker ${worker.name} did not answer: ${(err as Error).message}`,
      };
    }
  }
}

/** The most recent messages that fit in the worker input limit, oldest first. */
function fitMessages(messages: { role: string; author: string; content: string }[]) {
  const budget = LIMITS.inputBytes - 2_048;
  const out: typeof messages = [];
  let size = 0;
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i] as (typeof messages)[number];
    const cost = JSON.stringify(m).length + 1;
    if (size + cost > budget) break;
    out.unshift(m);
    size += cost;
  }
  return out;
}

export const noChatWorkerText = (): string =>
  `No chat worker is available (a worker with the "chat" capability, enabled, not paused or draining, its breaker closed), so I can only run commands.\n${helpText()}`;

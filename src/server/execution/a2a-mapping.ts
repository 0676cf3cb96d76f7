import { randomUUID } from "node:crypto";
import {
  type Artifact as A2AArtifact,
  type AgentCard,
  type Message,
  type Part,
  Role,
  type Task,
  TaskState,
} from "@a2a-js/sdk";
import { toStorableText } from "../../shared/text.js";
import type { Artifact, Critique, ExecuteRequest, ExecuteResult } from "../../shared/worker-protocol.js";

/**
 * Between the agency's worker protocol and Agent2Agent: a task's spec as an A2A message, an A2A task's
 * artifacts and status as a protocol result, an Agent Card as what the console and the dispatcher need.
 */

/** A2A states that end a task, and those that wait on the client (an operator here). */
export const TERMINAL_A2A_STATES: readonly TaskState[] = [
  TaskState.TASK_STATE_COMPLETED,
  TaskState.TASK_STATE_FAILED,
  TaskState.TASK_STATE_CANCELED,
  TaskState.TASK_STATE_REJECTED,
];
export const INTERRUPTED_A2A_STATES: readonly TaskState[] = [
  TaskState.TASK_STATE_INPUT_REQUIRED,
  TaskState.TASK_STATE_AUTH_REQUIRED,
];

/** The spec's name for an A2A state: `input-required`, `completed`, … */
export function a2aStateName(state: TaskState | undefined): string {
  switch (state) {
    case TaskState.TASK_STATE_SUBMITTED:
      return "submitted";
    case TaskState.TASK_STATE_WORKING:
      return "working";
    case TaskState.TASK_STATE_COMPLETED:
      return "completed";
    case TaskState.TASK_STATE_FAILED:
      return "failed";
    case TaskState.TASK_STATE_CANCELED:
      return "canceled";
    case TaskState.TASK_STATE_INPUT_REQUIRED:
      return "input-required";
    case TaskState.TASK_STATE_REJECTED:
      return "rejected";
    case TaskState.TASK_STATE_AUTH_REQUIRED:
      return "auth-required";
    default:
      return "unknown";
  }
}

const textPart = (value: string): Part => ({
  content: { $case: "text", value },
  metadata: undefined,
  filename: "",
  mediaType: "text/plain",
});

const dataPart = (value: unknown): Part => ({
  content: { $case: "data", value },
  metadata: undefined,
  filename: "",
  mediaType: "application/json",
});

export function userMessage(
  parts: Part[],
  opts: { messageId?: string; taskId?: string; contextId?: string; metadata?: Record<string, unknown> } = {},
): Message {
  return {
    messageId: opts.messageId ?? randomUUID(),
    contextId: opts.contextId ?? "",
    taskId: opts.taskId ?? "",
    role: Role.ROLE_USER,
    parts,
    metadata: opts.metadata,
    extensions: [],
    referenceTaskIds: [],
  };
}

function critiqueText(c: Critique): string {
  const lines = [
    `The council judged attempt ${c.fromAttempt} ${c.verdict === "reject" ? "rejected" : "as needing changes"}: ${c.rationale}`,
  ];
  for (const f of c.findings.slice(0, 100)) {
    const where = f.path ? ` (${f.path}${f.line ? `:${f.line}` : ""})` : "";
    lines.push(`- [${f.severity}] ${f.judge}${where}: ${f.message}`);
  }
  return lines.join("\n");
}

/**
 * The task as the first message of an attempt: a text part with the title, description and acceptance
 * criteria (what a language agent reads), a data part with the whole request (what a program reads), and
 * on a re-dispatch the council's critique as a text part of its own. The message id is the attempt's
 * idempotency key, so an agent can tell a resent first message from a new one.
 */
export function taskMessage(request: ExecuteRequest, opts: { messageId: string; contextId?: string }): Message {
  const { spec } = request;
  const lines = [spec.title, "", spec.description];
  if (spec.acceptanceCriteria.length) {
    lines.push("", "Acceptance criteria:");
    spec.acceptanceCriteria.forEach((c, i) => {
      lines.push(`${i + 1}. ${c.text}${c.check?.kind === "command" ? ` (checked by: ${c.check.command})` : ""}`);
    });
  }
  const parts = [textPart(lines.join("\n"))];
  if (request.critique) parts.push(textPart(critiqueText(request.critique)));
  parts.push(dataPart({ agency: request }));
  return userMessage(parts, {
    messageId: opts.messageId,
    ...(opts.contextId ? { contextId: opts.contextId } : {}),
    metadata: { agencyTaskId: request.taskId, attempt: request.attempt },
  });
}

/** An operator's answer to the agent's question, in the agent's own task and context. */
export const answerMessage = (text: string, remote: { taskId: string; contextId: string }): Message =>
  userMessage([textPart(text)], { taskId: remote.taskId, contextId: remote.contextId });

/** The readable text of a message: its text parts, and data parts as JSON. */
export function messageText(m: Message | undefined): string {
  if (!m) return "";
  return m.parts
    .map((p) => {
      const c = p.content;
      if (c?.$case === "text") return c.value;
      if (c?.$case === "data") return JSON.stringify(c.value);
      return "";
    })
    .filter(Boolean)
    .join("\n")
    .trim();
}

const OPERATIONS = new Set(["create", "modify", "delete"]);

/** A data part that is already a protocol v1 artifact (an agent that knows the agency). */
function asProtocolArtifact(value: unknown): Artifact | null {
  if (!value || typeof value !== "object") return null;
  const v = value as Record<string, unknown>;
  if (typeof v.path !== "string" || !v.path || typeof v.operation !== "string" || !OPERATIONS.has(v.operation)) {
    return null;
  }
  if (v.content !== undefined && typeof v.content !== "string") return null;
  if (v.diff !== undefined && typeof v.diff !== "string") return null;
  return {
    path: v.path,
    operation: v.operation as Artifact["operation"],
    ...(typeof v.content === "string" ? { content: v.content } : {}),
    ...(typeof v.diff === "string" ? { diff: v.diff } : {}),
  };
}

function operationOf(meta: Record<string, unknown> | undefined): Artifact["operation"] {
  const op = meta?.operation;
  return typeof op === "string" && OPERATIONS.has(op) ? (op as Artifact["operation"]) : "create";
}

/**
 * A2A artifacts as protocol artifacts. Per artifact: its text parts joined are one file (path from the
 * artifact's `metadata.path`, else its name, else its id); a file part with raw bytes is a file of its own
 * (its filename); a data part shaped like a protocol artifact (`{ path, operation, content?, diff? }`) is
 * taken as is, any other data part is a JSON file. A file part given by URL is not fetched (the agency
 * calls nothing but registered workers): it is named in `notes`, as is binary content that is not UTF-8.
 */
export function mapArtifacts(artifacts: A2AArtifact[]): { artifacts: Artifact[]; notes: string[] } {
  const out: Artifact[] = [];
  const notes: string[] = [];
  for (const a of artifacts) {
    const base =
      (typeof a.metadata?.path === "string" && a.metadata.path) ||
      a.name ||
      a.artifactId ||
      `artifact-${out.length + 1}`;
    const op = operationOf(a.metadata);
    const texts: string[] = [];
    a.parts.forEach((p, i) => {
      const c = p.content;
      if (!c) return;
      if (c.$case === "text") texts.push(c.value);
      else if (c.$case === "data") {
        const direct = asProtocolArtifact(c.value);
        if (direct) out.push(direct);
        else
          out.push({
            path: p.filename || (a.parts.length > 1 ? `${base}.part${i + 1}.json` : `${base}.json`),
            operation: op,
            content: JSON.stringify(c.value, null, 2),
          });
      } else if (c.$case === "raw") {
        const bytes = Buffer.from(c.value);
        const text = bytes.toString("utf8");
        if (Buffer.byteLength(text) !== bytes.length || text.includes("\uFFFD")) {
          notes.push(
            `Artifact ${p.filename || base}: ${bytes.length} bytes of binary content (${p.mediaType || "no media type"}), not stored.`,
          );
        } else out.push({ path: p.filename || base, operation: op, content: text });
      } else if (c.$case === "url") {
        notes.push(`Artifact ${p.filename || base} is at ${c.value} (not fetched).`);
      }
    });
    if (texts.length) out.push({ path: base, operation: op, content: texts.join("") });
  }
  return { artifacts: out, notes };
}

/**
 * Merges an artifact update into the artifacts seen so far: `append` adds its parts to the artifact of the
 * same id (a chunked artifact), otherwise it replaces that artifact or is added.
 */
export function mergeArtifact(into: A2AArtifact[], update: A2AArtifact, append: boolean): void {
  const i = into.findIndex((a) => a.artifactId === update.artifactId);
  if (i < 0) into.push(update);
  else if (append) {
    const prev = into[i] as A2AArtifact;
    into[i] = { ...prev, parts: [...prev.parts, ...update.parts] };
  } else into[i] = update;
}

/**
 * The protocol result of an A2A task in a final state: `completed` is a completed result with its
 * artifacts; `failed`, `rejected` and `canceled` (not asked for) are a failed result with the agent's message.
 */
export function resultOf(
  task: Pick<Task, "status" | "artifacts">,
  artifacts: A2AArtifact[],
  logs: string[],
  startedAt: number,
): ExecuteResult {
  const state = task.status?.state;
  const said = toStorableText(messageText(task.status?.message)).slice(0, 100_000);
  const mapped = mapArtifacts(artifacts.length ? artifacts : task.artifacts);
  const allLogs = [...logs, ...mapped.notes].map((l) => toStorableText(l).slice(0, 100_000)).slice(-10_000);
  const usage = { durationMs: Date.now() - startedAt };
  if (state === TaskState.TASK_STATE_COMPLETED) {
    return {
      status: "completed",
      summary: said || `The agent completed the task with ${mapped.artifacts.length} artifact(s).`,
      artifacts: mapped.artifacts.map((a) => ({
        ...a,
        path: toStorableText(a.path).slice(0, 1_000),
        ...(a.content !== undefined ? { content: toStorableText(a.content) } : {}),
        ...(a.diff !== undefined ? { diff: toStorableText(a.diff) } : {}),
      })),
      logs: allLogs,
      usage,
    };
  }
  const name = a2aStateName(state);
  const message = said || `The agent ended the task ${name} without a message.`;
  return {
    status: "failed",
    summary: message,
    artifacts: [],
    logs: allLogs,
    usage,
    error: { code: `a2a_${name}`, message: `A2A task ${name}: ${message}`.slice(0, 10_000) },
  };
}

/** A reply that is a message, not a task: the agent answered at once, with no task to follow. */
export function resultOfMessage(m: Message, startedAt: number): ExecuteResult {
  const text = toStorableText(messageText(m)).slice(0, 100_000);
  return {
    status: "completed",
    summary: text || "The agent answered with an empty message.",
    artifacts: [],
    usage: { durationMs: Date.now() - startedAt },
  };
}

const CAPABILITY = /^[a-z0-9][a-z0-9._-]*$/;

/** A skill id as a capability name: lower case, other characters as '-', at most 64 characters. */
export function capabilityOf(skillId: string): string | null {
  const c = skillId
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, "-")
    .replace(/^[^a-z0-9]+/, "")
    .slice(0, 64);
  return CAPABILITY.test(c) ? c : null;
}

/** How the agent wants to be authenticated: the header the worker's token goes in, and its prefix. */
export interface CardAuth {
  /** The card's scheme, e.g. "http bearer", "apiKey header X-Api-Key", or "none". */
  scheme: string;
  header: string;
  prefix: string;
  /** A scheme the agency cannot use with a static token (OAuth 2, OpenID Connect, mutual TLS, API key not in a header). */
  unsupported?: string;
}

export function cardAuth(card: AgentCard): CardAuth {
  const required = card.securityRequirements.flatMap((r) => Object.keys(r.schemes));
  const names = required.length ? required : Object.keys(card.securitySchemes);
  for (const name of names) {
    const s = card.securitySchemes[name]?.scheme;
    if (!s) continue;
    if (s.$case === "httpAuthSecurityScheme") {
      const scheme = s.value.scheme || "Bearer";
      const prefix = scheme.toLowerCase() === "bearer" ? "Bearer" : scheme;
      return { scheme: `http ${scheme.toLowerCase()}`, header: "authorization", prefix: `${prefix} ` };
    }
    if (s.$case === "apiKeySecurityScheme") {
      if (s.value.location.toLowerCase() === "header" && s.value.name) {
        return { scheme: `apiKey header ${s.value.name}`, header: s.value.name.toLowerCase(), prefix: "" };
      }
      return {
        scheme: `apiKey ${s.value.location}`,
        header: "authorization",
        prefix: "Bearer ",
        unsupported: `an API key in the ${s.value.location}`,
      };
    }
    const kind = s.$case.replace(/SecurityScheme$/, "");
    return { scheme: kind, header: "authorization", prefix: "Bearer ", unsupported: kind };
  }
  return { scheme: "none", header: "authorization", prefix: "Bearer " };
}

/** What the console shows of an agent's card and what dispatch uses (its skills as capabilities). */
export interface CardSummary {
  name: string;
  description: string;
  version: string;
  streaming: boolean;
  auth: string;
  skills: { id: string; name: string; tags: string[] }[];
  interfaces: { url: string; binding: string; version: string }[];
}

export function cardSummary(card: AgentCard): CardSummary {
  return {
    name: toStorableText(card.name).slice(0, 200),
    description: toStorableText(card.description).slice(0, 2_000),
    version: toStorableText(card.version).slice(0, 100),
    streaming: card.capabilities?.streaming === true,
    auth: cardAuth(card).scheme,
    skills: card.skills.slice(0, 50).map((s) => ({
      id: toStorableText(s.id).slice(0, 200),
      name: toStorableText(s.name).slice(0, 200),
      tags: s.tags.slice(0, 20).map((t) => toStorableText(t).slice(0, 64)),
    })),
    interfaces: card.supportedInterfaces.slice(0, 10).map((i) => ({
      url: toStorableText(i.url).slice(0, 500),
      binding: toStorableText(i.protocolBinding).slice(0, 32),
      version: toStorableText(i.protocolVersion).slice(0, 16),
    })),
  };
}

/** The card's skills as capabilities (deduplicated, at most 50). */
export function skillCapabilities(card: AgentCard): string[] {
  const caps = new Set<string>();
  for (const s of card.skills) {
    const c = capabilityOf(s.id);
    if (c) caps.add(c);
    if (caps.size >= 50) break;
  }
  return [...caps];
}

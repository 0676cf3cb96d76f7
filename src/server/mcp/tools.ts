import type { CallToolResult, Tool } from "@modelcontextprotocol/sdk/types.js";
import { TRPCError } from "@trpc/server";
import { z } from "zod";
import { taskApproveInputSchema, taskRejectInputSchema } from "../../shared/approvals.js";
import { LOG_EVENT_TYPES } from "../../shared/task-events.js";
import {
  taskCancelInputSchema,
  taskEventsInputSchema,
  taskIdInputSchema,
  taskRerunInputSchema,
} from "../../shared/task-inputs.js";
import { taskListInputSchema } from "../../shared/task-list.js";
import { taskSpecSchema } from "../../shared/task-spec.js";
import { jsonProblem, MAX_REQUEST_DEPTH } from "../../shared/text.js";
import { errorIdOf, hidesDetail, publicMessage } from "../lib/public-errors.js";
import { validationMessage } from "../lib/validation-message.js";
import type { Logger } from "../logger.js";
import type { appRouter } from "../router.js";

/** The tRPC procedures as the MCP caller's actor: the same inputs, role checks, services and errors. */
export type AgencyCaller = ReturnType<typeof appRouter.createCaller>;

export const taskUri = (id: string) => `agency://tasks/${id}`;
export const artifactUri = (taskId: string, artifactId: string) => `agency://tasks/${taskId}/artifacts/${artifactId}`;

interface AgencyTool {
  name: string;
  title: string;
  description: string;
  /** The zod schema of the tRPC procedure the tool calls: listed as JSON Schema, parsed by the procedure. */
  input: z.ZodType;
  annotations: NonNullable<Tool["annotations"]>;
  run(caller: AgencyCaller, args: Record<string, unknown>): Promise<unknown>;
}

const NO_INPUT = z.object({});
const read = { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false };

/** A task as a tool returns it: with its resource URI, and each artifact's. */
function withUris<T extends { id: string }>(task: T): T & { uri: string } {
  const t = task as T & { artifacts?: { id: string }[]; attempts?: { artifacts: { id: string }[] }[] };
  const link = (a: { id: string }) => ({ ...a, uri: artifactUri(task.id, a.id) });
  return {
    ...task,
    uri: taskUri(task.id),
    ...(t.artifacts ? { artifacts: t.artifacts.map(link) } : {}),
    ...(t.attempts ? { attempts: t.attempts.map((a) => ({ ...a, artifacts: a.artifacts.map(link) })) } : {}),
  };
}

export const TOOLS: readonly AgencyTool[] = [
  {
    name: "create_task",
    title: "Submit a task",
    description:
      "Submits a task to the agency (tasks.create): a worker with the task's capability runs it, then the council " +
      "judges the result (accepted, changes_requested or rejected). For the reference worker, put the shell " +
      "script to run in input.script; acceptance criteria may carry automated checks. Returns the queued task; " +
      "follow it with get_task. Needs the operator role.",
    input: taskSpecSchema,
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
    run: async (caller, args) => withUris(await caller.tasks.create(args as z.input<typeof taskSpecSchema>)),
  },
  {
    name: "list_tasks",
    title: "List tasks",
    description:
      "Lists tasks, newest first by default (tasks.list): filter by states, priorities, riskTiers, modes, text " +
      "(in the title or description) and created range; page with the previous answer's nextCursor.",
    input: taskListInputSchema,
    annotations: read,
    run: async (caller, args) => {
      const page = await caller.tasks.list(args as z.input<typeof taskListInputSchema>);
      return { ...page, items: page.items.map(withUris) };
    },
  },
  {
    name: "get_task",
    title: "Get a task",
    description:
      "A task with its state, spec, every attempt (worker, timings, tries, error, critique), its artifacts with " +
      "diffs, and the verdict with each judge's findings (path, line, pattern, snippet) and rationale " +
      "(tasks.get); also the task it reruns (rerunOf) and its reruns.",
    input: taskIdInputSchema,
    annotations: read,
    run: async (caller, args) => withUris(await caller.tasks.get(args as z.input<typeof taskIdInputSchema>)),
  },
  {
    name: "get_task_logs",
    title: "Read a task's log",
    description:
      `One page of a task's log, oldest first within the page (tasks.events): by default the worker's output and ` +
      `the agency's notes on tries, losses and breakers (kinds ${LOG_EVENT_TYPES.join(", ")}); give kinds for ` +
      "others (state_changed for the state history). Without after or before: the newest `limit` entries; " +
      "before: seq for older ones; after: `through` of the previous page for newer ones.",
    input: taskEventsInputSchema,
    annotations: read,
    run: (caller, args) =>
      caller.tasks.events({ kinds: [...LOG_EVENT_TYPES], ...args } as z.input<typeof taskEventsInputSchema>),
  },
  {
    name: "cancel_task",
    title: "Cancel a task",
    description:
      "Cancels a queued or running task with a reason (tasks.cancel): it goes to canceling, its worker is told, " +
      "and it ends canceled, confirmed or unconfirmed. Needs the operator role.",
    input: taskCancelInputSchema,
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
    run: async (caller, args) => withUris(await caller.tasks.cancel(args as z.input<typeof taskCancelInputSchema>)),
  },
  {
    name: "retry_task",
    title: "Retry a task",
    description:
      "Puts a finished task (changes_requested, rejected, failed or canceled) back in the queue as a new attempt " +
      "carrying the last verdict's critique (tasks.retry). Needs the operator role.",
    input: taskIdInputSchema,
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
    run: async (caller, args) => withUris(await caller.tasks.retry(args as z.input<typeof taskIdInputSchema>)),
  },
  {
    name: "approve_task",
    title: "Approve a task",
    description:
      "Approves a task awaiting approval (its risk tier's policy holds the council's accepted result for a person): " +
      "it becomes accepted (tasks.approve), with an optional note. Needs the operator role, or admin where the " +
      "tier says so; the task's creator may not approve it under four eyes.",
    input: taskApproveInputSchema,
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
    run: (caller, args) => caller.tasks.approve(args as z.input<typeof taskApproveInputSchema>),
  },
  {
    name: "reject_task",
    title: "Reject a task awaiting approval",
    description:
      "Rejects a task awaiting approval with a note saying why (tasks.reject): it becomes rejected. The same " +
      "rules as approve_task.",
    input: taskRejectInputSchema,
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
    run: (caller, args) => caller.tasks.reject(args as z.input<typeof taskRejectInputSchema>),
  },
  {
    name: "rerun_task",
    title: "Rerun a task with changes",
    description:
      "A new task from a finished task's spec with edits applied (tasks.rerun): each field given in edits " +
      "replaces the original's whole (input replaces the whole input), checked as create_task checks it. The new " +
      "task names the original in rerunOf. Needs the operator role.",
    input: taskRerunInputSchema,
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
    run: async (caller, args) => withUris(await caller.tasks.rerun(args as z.input<typeof taskRerunInputSchema>)),
  },
  {
    name: "list_workers",
    title: "List workers",
    description:
      "The registered workers (workers.list): capabilities, protocol, health, in flight, circuit breaker state " +
      "and last error.",
    input: NO_INPUT,
    annotations: read,
    run: async (caller) => ({ workers: await caller.workers.list() }),
  },
  {
    name: "verify_provenance",
    title: "Verify the provenance log",
    description:
      "Checks the whole provenance log with the pinned public keys (provenance.verify): every record's digests " +
      "and leaf hash, and each signed checkpoint; names the first record that does not match.",
    input: NO_INPUT,
    annotations: { ...read, idempotentHint: true },
    run: (caller) => caller.provenance.verify(),
  },
];

const DATE_AS_STRING = { type: "string", format: "date-time" } as const;

/** A tool's input as JSON Schema (what a client is given): the procedure's input type, dates as ISO strings. */
function inputJsonSchema(schema: z.ZodType): Tool["inputSchema"] {
  const json = z.toJSONSchema(schema, {
    io: "input",
    unrepresentable: "any",
    override: (ctx) => {
      if ((ctx.zodSchema as { _zod: { def: { type: string } } })._zod.def.type === "date") {
        Object.assign(ctx.jsonSchema, DATE_AS_STRING);
      }
    },
  }) as Record<string, unknown>;
  const { $schema: _dialect, ...rest } = json;
  return { ...rest, type: "object" } as Tool["inputSchema"];
}

let listed: Tool[] | undefined;
/** The tool list is the same for every caller (each call checks the caller's role), so it is built once. */
export function toolList(): Tool[] {
  listed ??= TOOLS.map((t) => ({
    name: t.name,
    title: t.title,
    description: t.description,
    inputSchema: inputJsonSchema(t.input),
    annotations: { title: t.title, ...t.annotations },
  }));
  return listed;
}

/** JSON as a client gets it: dates as ISO strings, 64-bit numbers as strings. */
export function plainJson(value: unknown): Record<string, unknown> {
  return JSON.parse(JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? v.toString() : v))) as Record<
    string,
    unknown
  >;
}

/** What the API answers for an error, in its words: a validation error names each field; internal ones an id. */
export function errorAnswer(err: unknown, log: Logger, where: string): { code: string; message: string } {
  const error = err instanceof TRPCError ? err : new TRPCError({ code: "INTERNAL_SERVER_ERROR", cause: err });
  if (hidesDetail(error)) {
    log.error({ err: error.cause ?? error, mcp: where, errorId: errorIdOf(error) }, "MCP request failed");
    return { code: error.code, message: publicMessage(error) };
  }
  if (error.cause instanceof z.ZodError) return { code: error.code, message: validationMessage(error.cause.issues) };
  return { code: error.code, message: error.message };
}

/**
 * Runs a tool as the caller. The arguments go to the tool's tRPC procedure unchanged, which parses them with the
 * same schema and checks the caller's role; a refusal comes back as a tool error (isError) in the API's words.
 */
export async function callTool(
  caller: AgencyCaller,
  name: string,
  args: Record<string, unknown> | undefined,
  log: Logger,
): Promise<CallToolResult | null> {
  const tool = TOOLS.find((t) => t.name === name);
  if (!tool) return null;
  const input = args ?? {};
  // As trpc.ts does for every request: nesting is measured without recursion before anything walks it.
  if (jsonProblem(input, { maxDepth: MAX_REQUEST_DEPTH })) {
    return failed(
      "BAD_REQUEST",
      `The request is nested too deeply: objects and arrays at most ${MAX_REQUEST_DEPTH} levels deep.`,
    );
  }
  try {
    const result = plainJson(await tool.run(caller, input));
    return { content: [{ type: "text", text: JSON.stringify(result, null, 2) }], structuredContent: result };
  } catch (err) {
    const { code, message } = errorAnswer(err, log, `tools/call ${name}`);
    return failed(code, message);
  }
}

function failed(code: string, message: string): CallToolResult {
  return { isError: true, content: [{ type: "text", text: message }], structuredContent: { error: { code, message } } };
}

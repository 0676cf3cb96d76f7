import { McpServer, ResourceTemplate } from "@modelcontextprotocol/sdk/server/mcp.js";
import {
  CallToolRequestSchema,
  ErrorCode,
  ListToolsRequestSchema,
  McpError,
  type ReadResourceResult,
} from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import { taskSpecSchema } from "../../shared/task-spec.js";
import type { Logger } from "../logger.js";
import { VERSION } from "../system/service.js";
import { type AgencyCaller, artifactUri, callTool, errorAnswer, plainJson, taskUri, toolList } from "./tools.js";

/** The JSON-RPC error code the MCP specification gives an unknown resource. */
const RESOURCE_NOT_FOUND = -32002;
/** How many of the newest tasks resources/list names (the rest are read by URI, or found with list_tasks). */
const LISTED_TASKS = 50;

const INSTRUCTIONS =
  "Agent Agency dispatches tasks to worker agents and has a council of judges review every result. Submit work " +
  "with create_task (the prompt draft_task_spec turns a request into a spec), follow it with get_task until its " +
  "state is accepted, changes_requested, rejected, failed or canceled (awaiting_approval waits for a person: " +
  "approve_task or reject_task), read its output with get_task_logs, and act on it with cancel_task, retry_task or " +
  "rerun_task. Every tool runs with your API token's role.";

/** A procedure's refusal as a JSON-RPC error (resources and prompts have no isError result). */
function protocolError(err: unknown, log: Logger, where: string): McpError {
  const { code, message } = errorAnswer(err, log, where);
  const rpc =
    code === "NOT_FOUND"
      ? RESOURCE_NOT_FOUND
      : code === "BAD_REQUEST"
        ? ErrorCode.InvalidParams
        : code === "INTERNAL_SERVER_ERROR"
          ? ErrorCode.InternalError
          : ErrorCode.InvalidRequest;
  return new McpError(rpc, message, { code });
}

const variable = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v) ?? "";

/**
 * The agency's MCP server for one request, acting as `caller` (the request's API token): the task tools, tasks
 * and their artifacts as resources, and a prompt that drafts a task spec. Built per request (stateless
 * streamable HTTP), so nothing of one caller outlives its request.
 */
export function buildMcpServer(caller: AgencyCaller, log: Logger): McpServer {
  const mcp = new McpServer(
    { name: "agent-agency", title: "Agent Agency", version: VERSION },
    { capabilities: { resources: {}, prompts: {} }, instructions: INSTRUCTIONS },
  );

  // Tools on the protocol's own handlers: the arguments go to the tRPC procedure unparsed, so the procedure's
  // schema is the only check and its words the only error (the SDK's own check would answer in other words).
  mcp.server.registerCapabilities({ tools: {} });
  mcp.server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: toolList() }));
  mcp.server.setRequestHandler(CallToolRequestSchema, async (request) => {
    const result = await callTool(caller, request.params.name, request.params.arguments, log);
    if (!result) {
      throw new McpError(
        ErrorCode.InvalidParams,
        `Unknown tool ${JSON.stringify(request.params.name).slice(0, 100)}; tools/list names them.`,
      );
    }
    return result;
  });

  mcp.registerResource(
    "task",
    new ResourceTemplate("agency://tasks/{id}", {
      list: async () => {
        try {
          const page = await caller.tasks.list({ limit: LISTED_TASKS });
          return {
            resources: page.items.map((t) => ({
              uri: taskUri(t.id),
              name: t.title,
              description: `${t.state}, ${t.mode}, ${t.priority} priority, tier ${t.riskTier}`,
              mimeType: "application/json",
            })),
          };
        } catch (err) {
          throw protocolError(err, log, "resources/list");
        }
      },
    }),
    {
      title: "Task",
      description: "A task as get_task returns it: spec, attempts, artifacts, verdict and findings.",
      mimeType: "application/json",
    },
    async (uri, vars): Promise<ReadResourceResult> => {
      try {
        const task = plainJson(await caller.tasks.get({ id: variable(vars.id) }));
        const artifacts = (task.artifacts as { id: string }[]).map((a) => ({
          ...a,
          uri: artifactUri(task.id as string, a.id),
        }));
        return {
          contents: [
            { uri: uri.href, mimeType: "application/json", text: JSON.stringify({ ...task, artifacts }, null, 2) },
          ],
        };
      } catch (err) {
        throw protocolError(err, log, "resources/read task");
      }
    },
  );

  mcp.registerResource(
    "artifact",
    new ResourceTemplate("agency://tasks/{taskId}/artifacts/{artifactId}", { list: undefined }),
    {
      title: "Artifact",
      description:
        "A file a task's attempt created, changed or deleted: its content (or, when the worker sent only a diff, the diff).",
      mimeType: "text/plain",
    },
    async (uri, vars): Promise<ReadResourceResult> => {
      const taskId = variable(vars.taskId);
      const artifactId = variable(vars.artifactId);
      let task: Awaited<ReturnType<AgencyCaller["tasks"]["get"]>>;
      try {
        task = await caller.tasks.get({ id: taskId });
      } catch (err) {
        throw protocolError(err, log, "resources/read artifact");
      }
      const artifact = task.attempts.flatMap((a) => a.artifacts).find((a) => a.id === artifactId);
      if (!artifact) {
        throw new McpError(RESOURCE_NOT_FOUND, `Task ${taskId} has no artifact ${artifactId.slice(0, 100)}.`, {
          code: "NOT_FOUND",
        });
      }
      return {
        contents: [
          {
            uri: uri.href,
            mimeType: "text/plain",
            text: artifact.content ?? artifact.diff ?? "",
            _meta: { path: artifact.path, operation: artifact.operation },
          },
        ],
      };
    },
  );

  mcp.registerPrompt(
    "draft_task_spec",
    {
      title: "Draft a task spec",
      description:
        "Turns a request in plain words into a task spec for create_task, using the capabilities of the registered workers.",
      argsSchema: {
        request: z
          .string()
          .min(1, "Say what the task should do")
          .max(10_000, "The request must be at most 10000 characters"),
      },
    },
    async ({ request }) => {
      let workers: Awaited<ReturnType<AgencyCaller["workers"]["list"]>>;
      try {
        workers = await caller.workers.list();
      } catch (err) {
        throw protocolError(err, log, "prompts/get draft_task_spec");
      }
      const capabilities = [...new Set(workers.filter((w) => w.enabled).flatMap((w) => w.capabilities))].sort();
      const schema = z.toJSONSchema(taskSpecSchema, { io: "input", unrepresentable: "any" });
      const text = [
        "Draft a task for Agent Agency from the request below, as one JSON object that follows this JSON Schema",
        "(the input of the create_task tool):",
        "",
        JSON.stringify(schema, null, 2),
        "",
        capabilities.length
          ? `Workers are registered for these capabilities: ${capabilities.join(", ")}. Choose the capability that fits; a worker with "script" runs input.script, a shell script, in an empty workspace and returns the files it creates or changes.`
          : 'No worker is registered yet; use the capability "script" (input.script is a shell script run in an empty workspace; the files it creates or changes are the result).',
        "Give a short imperative title; put what done means in acceptanceCriteria, each with an automated check where one",
        'can decide it ({ "kind": "command", "command": "..." } run in the workspace, or { "kind": "pattern", ... });',
        "choose riskTier 1 for risky changes (more retries, more care), 3 for throwaway ones; keep scope and budget tight.",
        "Show the JSON, then call create_task with it once the user agrees.",
        "",
        "The request:",
        request,
      ].join("\n");
      return {
        description: "Drafts a create_task spec from the request.",
        messages: [{ role: "user", content: { type: "text", text } }],
      };
    },
  );

  return mcp;
}

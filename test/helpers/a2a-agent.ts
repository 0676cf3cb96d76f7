import { randomUUID } from "node:crypto";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  A2A_PROTOCOL_VERSION,
  AGENT_CARD_PATH,
  type AgentCard,
  type Message,
  type Part,
  Role,
  type Task,
  TaskState,
} from "@a2a-js/sdk";
import {
  AgentEvent,
  type AgentExecutor,
  DefaultRequestHandler,
  type ExecutionEventBus,
  InMemoryTaskStore,
  type RequestContext,
} from "@a2a-js/sdk/server";
import { agentCardHandler, jsonRpcHandler, UserBuilder } from "@a2a-js/sdk/server/express";
import express from "express";

/**
 * A small A2A agent built with the official SDK's server (DefaultRequestHandler, the express JSON-RPC
 * handler, an in-memory task store), for the agency's A2A worker tests. What it does with a task is read
 * from the agency's data part: `spec.input.a2a` =
 *   { act: "complete" }                 working (with a status message), an artifact, completed
 *   { act: "steps", steps, stepMs }     `steps` working updates `stepMs` apart (cancelable between), then completes
 *   { act: "ask", question }            input-required with the question; the answer becomes the artifact
 *   { act: "auth" }                     auth-required; the answer (a credential) completes it
 *   { act: "fail" | "reject", message } ends failed / rejected with the message
 */
export interface AgentOptions {
  streaming: boolean;
  /** When set, every request must carry `Authorization: Bearer <token>` (the card says so). */
  token?: string;
  name?: string;
  skills?: string[];
}

export interface RunningAgent {
  url: string;
  cardUrl: string;
  /** Tasks started (first messages), by the agency's idempotency key in the message id. */
  started: string[];
  /** Every user message received, as text. */
  messages: string[];
  /** cancelTask calls received, by A2A task id. */
  cancels: string[];
  /** Requests refused for a missing or wrong token. */
  unauthorized: number;
  /** Every A2A task this agent has, by id. */
  tasks: Map<string, { state: TaskState }>;
  /** Closes every open connection (streams break) but keeps listening. */
  dropConnections(): void;
  /** Stops listening and closes every connection: the agent is gone. */
  stop(): Promise<void>;
}

interface Act {
  act?: string;
  steps?: number;
  stepMs?: number;
  question?: string;
  message?: string;
}

const text = (value: string): Part => ({
  content: { $case: "text", value },
  metadata: undefined,
  filename: "",
  mediaType: "text/plain",
});

const agentMessage = (taskId: string, contextId: string, value: string): Message => ({
  messageId: randomUUID(),
  contextId,
  taskId,
  role: Role.ROLE_AGENT,
  parts: [text(value)],
  metadata: undefined,
  extensions: [],
  referenceTaskIds: [],
});

function actOf(m: Message): Act & { title: string } {
  for (const p of m.parts) {
    if (p.content?.$case === "data") {
      const agency = (p.content.value as { agency?: { spec?: { title?: string; input?: { a2a?: Act } } } }).agency;
      return { ...(agency?.spec?.input?.a2a ?? {}), title: agency?.spec?.title ?? "" };
    }
  }
  return { act: "complete", title: "" };
}

const textOf = (m: Message) =>
  m.parts
    .map((p) => (p.content?.$case === "text" ? p.content.value : ""))
    .filter(Boolean)
    .join("\n");

class TestExecutor implements AgentExecutor {
  private readonly canceled = new Set<string>();
  /** Per A2A task: what it was asked to do. */
  private readonly acts = new Map<string, Act & { title: string }>();

  constructor(private readonly agent: RunningAgent) {}

  cancelTask = async (taskId: string, _bus: ExecutionEventBus): Promise<void> => {
    this.agent.cancels.push(taskId);
    this.canceled.add(taskId);
  };

  async execute(ctx: RequestContext, bus: ExecutionEventBus): Promise<void> {
    const { taskId, contextId, userMessage } = ctx;
    const status = (state: TaskState, said?: string) => {
      this.agent.tasks.set(taskId, { state });
      bus.publish(
        AgentEvent.statusUpdate({
          taskId,
          contextId,
          status: {
            state,
            message: said ? agentMessage(taskId, contextId, said) : undefined,
            timestamp: new Date().toISOString(),
          },
          metadata: {},
        }),
      );
    };
    const artifact = (name: string, content: string) =>
      bus.publish(
        AgentEvent.artifactUpdate({
          taskId,
          contextId,
          artifact: {
            artifactId: randomUUID(),
            name,
            description: "",
            parts: [text(content)],
            metadata: undefined,
            extensions: [],
          },
          append: false,
          lastChunk: true,
          metadata: {},
        }),
      );
    this.agent.messages.push(textOf(userMessage));
    const existing: Task | undefined = ctx.task;
    bus.publish(
      AgentEvent.task(
        existing ?? {
          id: taskId,
          contextId,
          status: { state: TaskState.TASK_STATE_SUBMITTED, message: undefined, timestamp: new Date().toISOString() },
          artifacts: [],
          history: [userMessage],
          metadata: {},
        },
      ),
    );
    if (existing) {
      // A follow-up: the answer to the question this task asked.
      const act = this.acts.get(taskId);
      const answer = textOf(userMessage);
      status(TaskState.TASK_STATE_WORKING, `Thanks, going on with: ${answer}`);
      artifact(act?.act === "auth" ? "auth.txt" : "answer.txt", `${answer}\n`);
      status(TaskState.TASK_STATE_COMPLETED, "Done after the answer.");
      return;
    }
    this.agent.started.push(userMessage.messageId);
    const act = actOf(userMessage);
    this.acts.set(taskId, act);
    try {
      status(TaskState.TASK_STATE_WORKING, `Working on ${act.title}`);
      switch (act.act ?? "complete") {
        case "ask":
          status(TaskState.TASK_STATE_INPUT_REQUIRED, act.question ?? "Which greeting should I write?");
          return;
        case "auth":
          status(TaskState.TASK_STATE_AUTH_REQUIRED, "Give me a deploy key for the staging server.");
          return;
        case "fail":
          status(TaskState.TASK_STATE_FAILED, act.message ?? "The agent could not do it.");
          return;
        case "reject":
          status(TaskState.TASK_STATE_REJECTED, act.message ?? "The agent will not do this.");
          return;
        case "steps": {
          const steps = act.steps ?? 3;
          for (let i = 1; i <= steps; i++) {
            if (this.canceled.has(taskId)) {
              status(TaskState.TASK_STATE_CANCELED, `Canceled at step ${i} of ${steps}.`);
              return;
            }
            status(TaskState.TASK_STATE_WORKING, `Step ${i} of ${steps}`);
            await new Promise((r) => setTimeout(r, act.stepMs ?? 100));
          }
          if (this.canceled.has(taskId)) {
            status(TaskState.TASK_STATE_CANCELED, "Canceled after the last step.");
            return;
          }
          artifact("steps.txt", `${steps} steps done\n`);
          status(TaskState.TASK_STATE_COMPLETED, `All ${steps} steps done.`);
          return;
        }
        default:
          artifact("hello.txt", "hello from the agent\n");
          status(TaskState.TASK_STATE_COMPLETED, "Wrote hello.txt.");
      }
    } finally {
      this.canceled.delete(taskId);
    }
  }
}

export async function startA2AAgent(opts: AgentOptions): Promise<RunningAgent> {
  const card: AgentCard = {
    name: opts.name ?? "Test agent",
    description: "An agent for the agency's tests.",
    supportedInterfaces: [
      { url: "http://127.0.0.1/", protocolBinding: "JSONRPC", tenant: "", protocolVersion: A2A_PROTOCOL_VERSION },
    ],
    provider: undefined,
    version: "1.0.0",
    capabilities: { streaming: opts.streaming, pushNotifications: false, extensions: [], extendedAgentCard: false },
    securitySchemes: opts.token
      ? {
          bearer: {
            scheme: { $case: "httpAuthSecurityScheme", value: { description: "", scheme: "Bearer", bearerFormat: "" } },
          },
        }
      : {},
    securityRequirements: opts.token ? [{ schemes: { bearer: { list: [] } } }] : [],
    defaultInputModes: ["text"],
    defaultOutputModes: ["text"],
    skills: (opts.skills ?? ["write_files"]).map((id) => ({
      id,
      name: id,
      description: `Skill ${id}`,
      tags: [],
      examples: [],
      inputModes: [],
      outputModes: [],
      securityRequirements: [],
    })),
    signatures: [],
  };
  const agent: RunningAgent = {
    url: "",
    cardUrl: "",
    started: [],
    messages: [],
    cancels: [],
    unauthorized: 0,
    tasks: new Map(),
    dropConnections: () => undefined,
    stop: async () => undefined,
  };
  const handler = new DefaultRequestHandler(card, new InMemoryTaskStore(), new TestExecutor(agent));
  const app = express();
  app.use(`/${AGENT_CARD_PATH}`, agentCardHandler({ agentCardProvider: handler }));
  if (opts.token) {
    app.use((req, res, next) => {
      if (req.headers.authorization === `Bearer ${opts.token}`) return next();
      agent.unauthorized++;
      res.status(401).json({ error: "unauthorized" });
    });
  }
  app.use(jsonRpcHandler({ requestHandler: handler, userBuilder: UserBuilder.noAuthentication }));
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  agent.url = `http://127.0.0.1:${port}`;
  agent.cardUrl = `${agent.url}/${AGENT_CARD_PATH}`;
  (card.supportedInterfaces[0] as { url: string }).url = `${agent.url}/`;
  agent.dropConnections = () => server.closeAllConnections();
  agent.stop = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return agent;
}

import type http from "node:http";
import { A2A_PROTOCOL_VERSION, type AgentCard, type AgentSkill } from "@a2a-js/sdk";
import { duplicateInterfacesForLegacy } from "@a2a-js/sdk/compat/v0_3";
import { cameOverHttps } from "../serving/headers.js";
import { VERSION } from "../system/service.js";

/** Where the JSON-RPC endpoint is served, on the agency's own port. */
export const A2A_PATH = "/a2a";
export const AGENT_CARD_PATHNAME = "/.well-known/agent-card.json";
/** The security scheme's name in the card: the agency's API tokens as HTTP bearer tokens. */
export const SECURITY_SCHEME = "agencyApiToken";

export interface CardWorker {
  enabled: boolean;
  capabilities: string[];
}

/**
 * The agency's origin as its callers reach it: PUBLIC_URL when set (behind a proxy that rewrites Host),
 * else the request's Host with the scheme the connection reports, or a proxy trusted by TRUST_PROXY.
 */
export function publicOrigin(req: http.IncomingMessage, publicUrl: string | undefined, trustProxy: boolean): string {
  if (publicUrl) return new URL(publicUrl).origin;
  const header = (name: string) => {
    const v = req.headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const scheme = cameOverHttps(req, trustProxy) ? "https" : "http";
  const host = header("host") ?? `${req.socket.localAddress ?? "localhost"}:${req.socket.localPort ?? ""}`;
  return `${scheme}://${host}`;
}

/**
 * One skill per capability some enabled worker has: a task that names the capability (the spec's
 * `capability`, `script` when left out) goes to those workers. Worker names and addresses stay out of
 * the public card.
 */
export function skillsFrom(workers: CardWorker[]): AgentSkill[] {
  const counts = new Map<string, number>();
  for (const w of workers) {
    if (!w.enabled) continue;
    for (const c of new Set(w.capabilities)) counts.set(c, (counts.get(c) ?? 0) + 1);
  }
  return [...counts.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([capability, n]) => ({
      id: capability,
      name: capability,
      description:
        `Tasks that need the \`${capability}\` capability (${n} enabled worker${n > 1 ? "s" : ""}): ` +
        "the agency dispatches them, its council judges each result, and the judged files are the task's artifacts. " +
        `Send the description as text; a data part may carry a task spec (title, priority, riskTier, mode, acceptanceCriteria, scope, budget, input) with "capability": "${capability}".`,
      tags: [capability],
      examples:
        capability === "script"
          ? ['Write hello.txt\n(data part: {"input": {"script": "echo hello > hello.txt"}})']
          : [],
      inputModes: ["text/plain", "application/json"],
      outputModes: ["text/plain", "text/x-diff", "application/json"],
      securityRequirements: [],
    }));
}

/** The Agent Card (A2A 1.0), with the JSON-RPC endpoint offered in protocol 1.0 and, for older clients, 0.3. */
export function agencyCard(origin: string, workers: CardWorker[]): AgentCard {
  return {
    name: "Agent Agency",
    description:
      "A control plane for AI worker agents: a message becomes an agency task, dispatched to a capable worker, " +
      "judged by the agency's council (placeholders, budget and scope, acceptance checks) and audited. " +
      "The task's artifacts are the files of the judged attempt.",
    supportedInterfaces: duplicateInterfacesForLegacy(
      [{ url: `${origin}${A2A_PATH}`, protocolBinding: "JSONRPC", tenant: "", protocolVersion: A2A_PROTOCOL_VERSION }],
      ["JSONRPC"],
    ),
    provider: { organization: "Agent Agency", url: origin },
    version: VERSION,
    capabilities: { streaming: true, pushNotifications: false, extensions: [], extendedAgentCard: false },
    securitySchemes: {
      [SECURITY_SCHEME]: {
        scheme: {
          $case: "httpAuthSecurityScheme",
          value: {
            scheme: "Bearer",
            bearerFormat: "agency API token (aat_…)",
            description:
              "An API token of an agency user (user menu → API tokens). Sending a message and canceling need the operator role; reading tasks, the viewer role.",
          },
        },
      },
    },
    securityRequirements: [{ schemes: { [SECURITY_SCHEME]: { list: [] } } }],
    defaultInputModes: ["text/plain", "application/json"],
    defaultOutputModes: ["text/plain", "text/x-diff", "application/json"],
    skills: skillsFrom(workers),
    signatures: [],
  };
}

import { z } from "zod";
import { safeText } from "./text.js";

export const WORKER_PROTOCOLS = ["v1", "a2a"] as const;
export type WorkerProtocol = (typeof WORKER_PROTOCOLS)[number];

/** A worker as an admin registers it, or as WORKERS lists it; the console's form checks with the same schema. */
const CAPABILITY = /^[a-z0-9][a-z0-9._-]*$/;

export const workerInputSchema = z.object({
  name: z
    .string()
    .trim()
    .min(1, "Worker name is required")
    .max(100, "Worker name must be at most 100 characters")
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "Worker name may contain only letters, digits, '.', '_' and '-'"),
  url: safeText(
    z.string().trim().min(1, "Worker URL is required").max(500, "Worker URL must be at most 500 characters"),
  ),
  /**
   * "v1": the agency's worker protocol, `url` is the worker's base URL. "a2a": an Agent2Agent agent, `url` is its
   * Agent Card (`…/.well-known/agent-card.json`, or the agent's base URL, to which that path is added).
   */
  protocol: z.enum(WORKER_PROTOCOLS).default("v1"),
  // Required for protocol v1 (workerRegisterSchema); an A2A worker without any takes its card's skills.
  capabilities: z
    .array(z.string().trim().max(64).regex(CAPABILITY, "Capability may contain only a-z, 0-9, '.', '_' and '-'"))
    .max(50)
    .default([]),
  maxConcurrency: z.number().int().min(1, "Max concurrency must be at least 1").max(1000).default(1),
  // Sealed, a token of 300 characters fills the 500-character column.
  token: safeText(z.string().min(1).max(300, "Worker token must be at most 300 characters")).optional(),
});
/** A parsed registration; `protocol` may be left out by code that registers v1 workers (absent: v1). */
export type WorkerInput = Omit<z.output<typeof workerInputSchema>, "protocol"> & { protocol?: WorkerProtocol };

export const NO_CAPABILITY_MESSAGE = "Give the worker at least one capability";

/** A registration (API, WORKERS, the console's form): a v1 worker needs a capability; an A2A one may take its card's skills. */
export const workerRegisterSchema = workerInputSchema.superRefine((w, ctx) => {
  if (w.protocol === "v1" && w.capabilities.length === 0) {
    ctx.addIssue({ code: "custom", path: ["capabilities"], message: NO_CAPABILITY_MESSAGE });
  }
});

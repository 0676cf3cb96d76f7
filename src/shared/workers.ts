import { z } from "zod";
import { safeText } from "./text.js";

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
  capabilities: z
    .array(z.string().trim().max(64).regex(CAPABILITY, "Capability may contain only a-z, 0-9, '.', '_' and '-'"))
    .min(1, "Give the worker at least one capability")
    .max(50),
  maxConcurrency: z.number().int().min(1, "Max concurrency must be at least 1").max(1000).default(1),
  // Sealed, a token of 300 characters fills the 500-character column.
  token: safeText(z.string().min(1).max(300, "Worker token must be at most 300 characters")).optional(),
});
export type WorkerInput = z.output<typeof workerInputSchema>;

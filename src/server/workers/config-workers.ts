import { z } from "zod";

const CAPABILITY = /^[a-z0-9][a-z0-9._-]*$/;

export const workerInputSchema = z.object({
  name: z
    .string()
    .trim()
    .min(1, "Worker name is required")
    .max(100, "Worker name must be at most 100 characters")
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "Worker name may contain only letters, digits, '.', '_' and '-'"),
  url: z.string().trim().min(1, "Worker URL is required").max(500, "Worker URL must be at most 500 characters"),
  capabilities: z
    .array(z.string().trim().max(64).regex(CAPABILITY, "Capability may contain only a-z, 0-9, '.', '_' and '-'"))
    .min(1, "Give the worker at least one capability")
    .max(50),
  maxConcurrency: z.number().int().min(1, "Max concurrency must be at least 1").max(1000).default(1),
  // Sealed, a token of 300 characters fills the 500-character column.
  token: z.string().min(1).max(300, "Worker token must be at most 300 characters").optional(),
});
export type WorkerInput = z.output<typeof workerInputSchema>;

/**
 * Parses the WORKERS variable: a JSON array of `{ name, url, capabilities, maxConcurrency, token }`,
 * or entries `name=url|cap1,cap2|concurrency[|token]` separated by `;` or new lines.
 */
export function parseConfigWorkers(raw: string): WorkerInput[] {
  const text = raw.trim();
  if (!text) return [];
  let items: unknown[];
  if (text.startsWith("[")) {
    try {
      items = JSON.parse(text) as unknown[];
    } catch (err) {
      throw new Error(`WORKERS is not valid JSON: ${(err as Error).message}`);
    }
    if (!Array.isArray(items)) throw new Error("WORKERS must be a JSON array of workers");
  } else {
    items = text
      .split(/[;\n]/)
      .map((s) => s.trim())
      .filter(Boolean)
      .map((entry) => {
        const eq = entry.indexOf("=");
        if (eq < 1) throw new Error(`WORKERS entry "${entry}" must look like name=url|cap1,cap2|concurrency`);
        const [url, caps, concurrency, token] = entry.slice(eq + 1).split("|");
        return {
          name: entry.slice(0, eq),
          url,
          capabilities: (caps ?? "script")
            .split(",")
            .map((c) => c.trim())
            .filter(Boolean),
          maxConcurrency: concurrency ? Number(concurrency) : 1,
          token: token || undefined,
        };
      });
  }
  return items.map((item, i) => {
    const parsed = workerInputSchema.safeParse(item);
    if (!parsed.success) {
      const why = parsed.error.issues.map((x) => `${x.path.join(".") || "entry"}: ${x.message}`).join("; ");
      throw new Error(`WORKERS entry ${i + 1} is invalid: ${why}`);
    }
    return parsed.data;
  });
}

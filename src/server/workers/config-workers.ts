import { type WorkerInput, workerRegisterSchema } from "../../shared/workers.js";

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
    const parsed = workerRegisterSchema.safeParse(item);
    if (!parsed.success) {
      const why = parsed.error.issues.map((x) => `${x.path.join(".") || "entry"}: ${x.message}`).join("; ");
      throw new Error(`WORKERS entry ${i + 1} is invalid: ${why}`);
    }
    return parsed.data;
  });
}

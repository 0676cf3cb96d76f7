import type { z } from "zod";

/**
 * A validation error in the words the API answers with: each issue as `path: message`, joined by "; "
 * (`input` for an issue about the whole input). tRPC's error formatter (trpc.ts), tasks.rerun and the MCP
 * tools all use this, so a bad input reads the same whichever way it came in.
 */
export function validationMessage(issues: readonly z.core.$ZodIssue[], prefix: readonly PropertyKey[] = []): string {
  return issues.map((i) => `${[...prefix, ...i.path].map(String).join(".") || "input"}: ${i.message}`).join("; ");
}

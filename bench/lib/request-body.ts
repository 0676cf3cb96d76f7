/**
 * The body and headers the agency POSTs to a worker's /execute (protocol v1), built the same way for
 * the peers of bench/throughput.ts, so pg-boss and DBOS send the no-op worker what the agency sends.
 */

import { taskSpecSchema } from "../../src/shared/task-spec.js";
import {
  type ExecuteRequest,
  IDEMPOTENCY_HEADER,
  idempotencyKey,
  PROTOCOL_VERSION,
} from "../../src/shared/worker-protocol.js";

/** The deadline the agency gives a task of the default tier (2): 30 minutes. */
const DEADLINE_MS = 30 * 60_000;

export function executeRequest(
  taskId: string,
  title: string,
  i: number,
): { body: string; headers: Record<string, string> } {
  const request: ExecuteRequest = {
    protocol: PROTOCOL_VERSION,
    taskId,
    attempt: 1,
    spec: taskSpecSchema.parse({ title, mode: "chore", capability: "noop", input: { i } }),
    deadline: new Date(Date.now() + DEADLINE_MS).toISOString(),
  };
  return {
    body: JSON.stringify(request),
    headers: {
      "content-type": "application/json",
      accept: "application/x-ndjson, application/json",
      [IDEMPOTENCY_HEADER]: idempotencyKey(taskId, 1),
    },
  };
}

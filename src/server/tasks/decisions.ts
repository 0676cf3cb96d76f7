import type { Actor } from "../../shared/roles.js";
import type { TaskSpec } from "../../shared/task-spec.js";
import type { TaskState } from "../../shared/task-state.js";
import type { Judgement } from "../../shared/verdict.js";
import type { ExecuteResult } from "../../shared/worker-protocol.js";
import { canonicalJson, sha256Hex } from "../provenance/canonical.js";
import type { NewProvenanceRecord } from "../provenance/service.js";

/**
 * What each decision puts on the provenance chain. Bulky or sensitive content (the spec, artifacts,
 * the judgement) goes on as SHA-256 digests of its canonical JSON: the chain vouches for it without
 * copying it, and anyone holding the content can check it against the digest.
 */
export const digestOf = (value: unknown): string => sha256Hex(canonicalJson(value ?? null));

export function taskCreated(taskId: string, spec: TaskSpec, by: Pick<Actor, "kind" | "id">): NewProvenanceRecord {
  return {
    kind: "task.created",
    taskId,
    payload: {
      title: spec.title,
      mode: spec.mode,
      priority: spec.priority,
      riskTier: spec.riskTier,
      capability: spec.capability,
      specDigest: digestOf(spec),
      by: { kind: by.kind, id: by.id },
    },
  };
}

export function taskDispatched(
  taskId: string,
  attempt: { id: string; number: number },
  worker: { id: string; name: string },
): NewProvenanceRecord {
  return {
    kind: "task.dispatched",
    taskId,
    payload: { attempt: attempt.number, attemptId: attempt.id, worker: worker.name, workerId: worker.id },
  };
}

/** The end of an attempt: the worker's result (status and artifact digests), or why there is none. */
export function taskResult(
  taskId: string,
  attempt: { id: string; number: number },
  worker: string | null,
  result: ExecuteResult | null | undefined,
  error?: string | null,
): NewProvenanceRecord {
  return {
    kind: "task.result",
    taskId,
    payload: {
      attempt: attempt.number,
      attemptId: attempt.id,
      worker,
      status: result?.status ?? "no_result",
      ...(result
        ? {
            summaryDigest: digestOf(result.summary),
            artifacts: result.artifacts.map((a) => ({
              path: a.path,
              operation: a.operation,
              digest: digestOf({ content: a.content ?? null, diff: a.diff ?? null }),
            })),
          }
        : {}),
      ...(error ? { error: error.slice(0, 500) } : {}),
    },
  };
}

export function taskVerdict(taskId: string, attempt: number, judgement: Judgement): NewProvenanceRecord {
  return {
    kind: "task.verdict",
    taskId,
    payload: { attempt, verdict: judgement.verdict, judgementDigest: digestOf(judgement) },
  };
}

export function taskCancel(
  taskId: string,
  cancel: { by: string | null; reason: string | null; confirmed: boolean; detail: string },
): NewProvenanceRecord {
  return { kind: "task.cancel", taskId, payload: cancel };
}

export function taskRetry(
  taskId: string,
  by: Pick<Actor, "kind" | "id">,
  critiqueFrom: number | null,
): NewProvenanceRecord {
  return { kind: "task.retry", taskId, payload: { by: { kind: by.kind, id: by.id }, critiqueFrom } };
}

/** An admin's replacement of the council's verdict, as stored on the judgement and put on the chain. */
export interface VerdictOverride {
  by: string;
  at: string;
  from: TaskState;
  to: TaskState;
  justification: string;
}

export function taskOverride(taskId: string, override: VerdictOverride): NewProvenanceRecord {
  return { kind: "task.override", taskId, payload: { ...override } };
}

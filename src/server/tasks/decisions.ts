import type { Actor } from "../../shared/roles.js";
import type { TaskSpec } from "../../shared/task-spec.js";
import type { TaskState } from "../../shared/task-state.js";
import type { Judgement } from "../../shared/verdict.js";
import type { ExecuteResult } from "../../shared/worker-protocol.js";
import { canonicalJson, sha256Hex } from "../provenance/canonical.js";
import {
  type ArtifactRowHashes,
  type AttemptOutcomeContent,
  artifactRowDigest,
  attemptOutcomeDigest,
  type BoundRows,
} from "../provenance/rows.js";
import type { NewProvenanceRecord } from "../provenance/service.js";

/**
 * What each decision puts on the provenance chain. Bulky or sensitive content (the spec, artifacts,
 * the judgement) goes on as SHA-256 digests of its canonical JSON: the chain vouches for it without
 * copying it, and anyone holding the content can check it against the digest.
 */
export const digestOf = (value: unknown): string => sha256Hex(canonicalJson(value ?? null));

/** `rerunOf`: the finished task this one reruns (tasks.rerun); the chain binds the link. */
export function taskCreated(
  taskId: string,
  spec: TaskSpec,
  by: Pick<Actor, "kind" | "id">,
  rerunOf?: string,
): NewProvenanceRecord {
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
      ...(rerunOf ? { rerunOf } : {}),
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

/** An attempt's end as its transaction stores it: the outcome columns and each artifact row. */
export interface StoredAttemptEnd {
  outcome: AttemptOutcomeContent;
  artifacts: (ArtifactRowHashes & { id: string })[];
}

/**
 * The end of an attempt: the worker's status, the stored summary's digest and the artifacts, or why
 * there is no result. `stored` binds the attempt's row and its artifact rows by digest
 * (provenance/rows.ts): the digests are of what the transaction writes, not of the worker's raw answer.
 */
export function taskResult(
  taskId: string,
  attempt: { id: string; number: number },
  worker: string | null,
  result: ExecuteResult | null | undefined,
  error: string | null | undefined,
  stored: StoredAttemptEnd,
): NewProvenanceRecord {
  const rows: BoundRows = { attempt: [attempt.id, attemptOutcomeDigest(stored.outcome)] };
  return {
    kind: "task.result",
    taskId,
    payload: {
      attempt: attempt.number,
      attemptId: attempt.id,
      worker,
      status: result?.status ?? "no_result",
      ...(result ? { summaryDigest: digestOf(stored.outcome.summary) } : {}),
      // Every artifact row the attempt's end stored (none when it failed), by id and row digest.
      artifacts: stored.artifacts.map((a) => ({
        id: a.id,
        path: a.path,
        operation: a.operation,
        digest: artifactRowDigest(a),
      })),
      ...(error ? { error: error.slice(0, 500) } : {}),
      rows,
    },
  };
}

/** The council's verdict on an attempt, binding the verdict and judgement columns as stored. */
export function taskVerdict(
  taskId: string,
  attempt: { id: string; number: number },
  judgement: Judgement,
): NewProvenanceRecord {
  // The judgement serialized once for both digests: `{judgement, verdict}` in canonical key order.
  const canonical = canonicalJson(judgement);
  const row = sha256Hex(`{"judgement":${canonical},"verdict":${JSON.stringify(judgement.verdict)}}`);
  const rows: BoundRows = { judgement: [attempt.id, row] };
  return {
    kind: "task.verdict",
    taskId,
    payload: {
      attempt: attempt.number,
      attemptId: attempt.id,
      verdict: judgement.verdict,
      judgementDigest: sha256Hex(canonical),
      rows,
    },
  };
}

/** A cancel asked for while an attempt runs; `task.cancel` follows when it ends, confirmed or not. */
export function taskCancelRequested(taskId: string, by: string, reason: string): NewProvenanceRecord {
  return { kind: "task.cancel_requested", taskId, payload: { by, reason } };
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

/** `judged`: the attempt whose judgement the override rewrote, with the rewritten columns' digest. */
export function taskOverride(
  taskId: string,
  override: VerdictOverride,
  judged: { attemptId: string; digest: string } | null,
): NewProvenanceRecord {
  return {
    kind: "task.override",
    taskId,
    payload: { ...override, ...(judged ? { rows: { judgement: [judged.attemptId, judged.digest] } } : {}) },
  };
}

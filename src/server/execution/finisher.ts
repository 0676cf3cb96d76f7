import { randomUUID } from "node:crypto";
import type { TaskState } from "../../shared/task-state.js";
import { type Judgement, VERDICT_STATE } from "../../shared/verdict.js";
import type { Critique, ExecuteResult } from "../../shared/worker-protocol.js";
import { auditInsertSql } from "../audit/service.js";
import { SYSTEM_ACTORS, workerActor } from "../audit/trail.js";
import { critiqueFrom } from "../council/council.js";
import { parseUnifiedDiff } from "../council/diff.js";
import type { UnitOfWork, UnitOfWorkRunner } from "../db/unit-of-work.js";
import { newErrorId } from "../lib/public-errors.js";
import type { Logger } from "../logger.js";
import { textDigest } from "../provenance/rows.js";
import { type StoredAttemptEnd, taskResult, taskVerdict } from "../tasks/decisions.js";
import { applyStateChanges, requeueOrFail, type StateChange } from "../tasks/state-changes.js";

/** The end of one attempt, as its run saw it. */
export type AttemptEnd =
  | {
      kind: "completed";
      attemptId: string;
      taskId: string;
      number: number;
      workerName: string;
      tries: number;
      result: ExecuteResult;
      judgement: Judgement | null;
      /** Set when the council itself failed: the task fails with this reason. */
      councilError?: string;
    }
  | {
      kind: "failed";
      attemptId: string;
      taskId: string;
      number: number;
      workerName: string;
      tries: number;
      error: string;
      /** false: not the task's fault (the breaker opened before the call), so it costs no attempt. */
      countsAsFailure: boolean;
      summary?: string;
      result?: ExecuteResult;
      /** The worker said the task failed (its own word), rather than the call failing. */
      reportedByWorker?: boolean;
    };

export interface FinishSettings {
  owner: string;
  /** Whether an error means the database could not be reached (db.availability): the end is not written, not failed. */
  isConnectivity(err: unknown): boolean;
  maxAutoRedispatch: number;
  attemptsFor(riskTier: number): number;
  /** Whether the tier's policy (APPROVAL_POLICY) holds an accepted attempt for a person's approval. */
  approvalRequired(riskTier: number): boolean;
}

/**
 * Runs in the unit of work that writes a batch of attempt ends, after their rows: the slots they
 * free can be claimed again at once, without a transaction of their own (the claims are launched
 * after the commit: `unit.afterCommit`). It may run again if the unit is run again.
 */
export type Refill = (unit: UnitOfWork, written: AttemptEnd[]) => Promise<void>;

interface LockedRow {
  attempt_id: string;
  task_id: string;
  task_state: TaskState;
  redispatches: number;
  failures: number;
  risk_tier: number;
}

interface AttemptWrite {
  id: string;
  state: "completed" | "failed";
  tries: number;
  error: string | null;
  summary: string | null;
  result: unknown;
  verdict: string | null;
  judgement: unknown;
  /** The result's usage, in the columns the roll-ups sum (cost as a decimal string: numeric, never a float). */
  input_tokens: number | null;
  output_tokens: number | null;
  cost_usd: string | null;
  model: string | null;
}

interface Planned {
  attempts: AttemptWrite[];
  changes: StateChange[];
  artifacts: ArtifactWrite[];
}

interface ArtifactWrite {
  /** Drawn here rather than by the database: the result's provenance record names each artifact row. */
  id: string;
  attempt_id: string;
  path: string;
  operation: string;
  content: string | null;
  diff: string | null;
  lines_added: number;
  lines_removed: number;
}

/** Postgres text and jsonb cannot hold NUL; a worker's binary-ish output must not sink the batch. */
function clean(s: string | undefined | null, max: number): string | null {
  if (s == null) return null;
  const noNul = s.includes("\u0000") ? s.replaceAll("\u0000", "\uFFFD") : s;
  return noNul.length > max ? noNul.slice(0, max) : noNul;
}

function storedResult(r: ExecuteResult) {
  return JSON.parse(
    JSON.stringify({ logs: r.logs, checks: r.checks, usage: r.usage, error: r.error, status: r.status }).replaceAll(
      "\\u0000",
      "\\uFFFD",
    ),
  ) as unknown;
}

/** The usage columns of an attempt row, from the result the worker sent (none when it sent no result). */
export function usageColumns(
  r: ExecuteResult | undefined,
): Pick<AttemptWrite, "input_tokens" | "output_tokens" | "cost_usd" | "model"> {
  const u = r?.usage;
  return {
    input_tokens: u?.inputTokens ?? null,
    output_tokens: u?.outputTokens ?? null,
    // Six decimals, as the column keeps; toFixed on a bounded non-negative figure is exact enough for that.
    cost_usd: u?.costUsd === undefined ? null : u.costUsd.toFixed(6),
    model: clean(u?.model, 100),
  };
}

/**
 * Writes attempt ends in groups: one transaction and a handful of set-based statements per batch,
 * whatever its size. Each end is fenced: it is written only if this process still holds the
 * attempt's lease and the task is still `running` (a cancel or a recovery may have taken over).
 */
export class Finisher {
  private queue: { end: AttemptEnd; done: (state: TaskState | null) => void; fail: (err: unknown) => void }[] = [];
  private busy = false;

  constructor(
    private readonly log: Logger,
    private readonly settings: FinishSettings,
    private readonly units: UnitOfWorkRunner,
    private readonly refill: Refill,
  ) {}

  /**
   * Resolves to the task's state after the end when written, null when fenced off (the attempt was no
   * longer ours to finish); rejects when the database could not be reached (the caller holds the end and
   * tries again).
   */
  finish(end: AttemptEnd): Promise<TaskState | null> {
    return new Promise((done, fail) => {
      this.queue.push({ end, done, fail });
      if (!this.busy) void this.drain();
    });
  }

  /**
   * One batch at a time, of whatever queued meanwhile. Measured on 2 cores (bench:throughput): with
   * two or three batches in flight each is smaller and costs more CPU per task, for no more tasks/s.
   */
  private async drain(): Promise<void> {
    this.busy = true;
    try {
      while (this.queue.length) {
        const batch = this.queue.splice(0, 500);
        try {
          const written = await this.writeBatch(batch.map((b) => b.end));
          for (const b of batch) b.done(written.get(b.end.attemptId) ?? null);
        } catch (err) {
          if (this.settings.isConnectivity(err)) {
            // Unreachable (db.availability has logged it once): each caller holds its end and tries again.
            for (const b of batch) b.fail(err);
            continue;
          }
          this.log.warn({ err, size: batch.length }, "finishing a batch of attempts failed; writing them one by one");
          for (const b of batch) {
            try {
              b.done(await this.writeAlone(b.end));
            } catch (alone) {
              b.fail(alone);
            }
          }
        }
      }
    } finally {
      this.busy = false;
    }
  }

  private async writeAlone(end: AttemptEnd): Promise<TaskState | null> {
    try {
      return (await this.writeBatch([end])).get(end.attemptId) ?? null;
    } catch (err) {
      // Unreachable: nothing is wrong with the result, it is stored once the database is back.
      if (this.settings.isConnectivity(err)) throw err;
      // The database's own message stays in the log: the task is told our words and the id to look for.
      const errorId = newErrorId();
      this.log.error({ err, attemptId: end.attemptId, errorId }, "storing an attempt's result failed");
      const failed: AttemptEnd = {
        kind: "failed",
        attemptId: end.attemptId,
        taskId: end.taskId,
        number: end.number,
        workerName: end.workerName,
        tries: end.tries,
        error: `The agency could not store this attempt's result (internal error ${errorId}; the server's log has the detail).`,
        countsAsFailure: true,
      };
      return (await this.writeBatch([failed]).catch(() => new Map<string, TaskState>())).get(end.attemptId) ?? null;
    }
  }

  /** Writes a batch in one unit of work; resolves to the attempts written, each with its task's state after it. */
  private writeBatch(ends: AttemptEnd[]): Promise<Map<string, TaskState>> {
    return this.units.run(async (unit) => {
      const locked = await unit.tx.$queryRawUnsafe<LockedRow[]>(
        `SELECT a.id AS attempt_id, a.task_id, t.state AS task_state, t.redispatches, t.failures, t.risk_tier
           FROM attempts a JOIN tasks t ON t.id = a.task_id
          WHERE a.id IN (SELECT jsonb_array_elements_text($1::jsonb)::uuid)
            AND a.state = 'running' AND a.lease_owner = $2
          FOR UPDATE OF a, t`,
        JSON.stringify(ends.map((e) => e.attemptId)),
        this.settings.owner,
      );
      const byAttempt = new Map(locked.map((r) => [r.attempt_id, r]));
      const out: Planned = { attempts: [], changes: [], artifacts: [] };
      const written = new Map<string, TaskState>();
      for (const end of ends) {
        const row = byAttempt.get(end.attemptId);
        // Fenced: the lease is gone or the task is being canceled; whoever took over finishes it.
        if (row?.task_state !== "running") continue;
        this.plan(end, row, out);
        written.set(end.attemptId, out.changes.at(-1)?.steps.at(-1)?.to ?? "running");
      }
      if (!out.attempts.length) return written;
      // The rows are locked and were read running: every change applies.
      await applyStateChanges(unit, out.changes, { strict: true });
      await writeEnds(unit, out);
      await this.refill(
        unit,
        ends.filter((e) => written.has(e.attemptId)),
      );
      return written;
    });
  }

  private plan(end: AttemptEnd, row: LockedRow, out: Planned): void {
    const base = { attempt: end.number, worker: end.workerName, tries: end.tries };
    const attemptRef = { id: end.attemptId, number: end.number };
    if (end.kind === "failed" || end.councilError || !end.judgement) {
      const error = end.kind === "failed" ? end.error : `The council could not judge this attempt: ${end.councilError}`;
      const next = requeueOrFail({
        attempt: end.number,
        failures: row.failures,
        allowed: this.settings.attemptsFor(row.risk_tier),
        counts: end.kind === "failed" ? end.countsAsFailure : true,
        mayRequeue: end.kind === "failed",
        what: "failed",
        error,
      });
      const write: AttemptWrite = {
        id: end.attemptId,
        state: "failed",
        tries: end.tries,
        error: clean(error, 10_000),
        summary: clean(end.kind === "failed" ? end.summary : end.result.summary, 100_000),
        result: end.kind === "failed" ? (end.result ? storedResult(end.result) : null) : storedResult(end.result),
        verdict: null,
        judgement: null,
        ...usageColumns(end.result),
      };
      out.attempts.push(write);
      const requeue = next.state === "queued";
      out.changes.push({
        taskId: end.taskId,
        from: "running",
        steps: [
          {
            to: next.state,
            by: "system",
            // The worker's own report of failure is its act; a call that failed or a council that broke is ours.
            actor: end.kind === "failed" && end.reportedByWorker ? workerActor(end.workerName) : SYSTEM_ACTORS.engine,
            eventActor: "system",
            action: requeue ? "task.requeue" : "task.fail",
            reason: clean(next.reason, 2000),
            data: { ...base, error: clean(error, 2000) },
            before: { attempt: end.number },
            after: base,
          },
        ],
        set: { failures: next.failures, requeued: requeue, next_critique: null },
        provenance: [
          taskResult(end.taskId, attemptRef, end.workerName, end.result ?? null, clean(error, 500), stored(write, [])),
        ],
      });
      return;
    }

    const { result, judgement } = end;
    // An accepting verdict on a tier that needs a person's approval waits for it (tasks.approve / tasks.reject).
    const awaitsApproval = judgement.verdict === "accept" && this.settings.approvalRequired(row.risk_tier);
    const verdictState: TaskState = awaitsApproval ? "awaiting_approval" : VERDICT_STATE[judgement.verdict];
    const write: AttemptWrite = {
      id: end.attemptId,
      state: "completed",
      tries: end.tries,
      error: null,
      summary: clean(result.summary, 100_000),
      result: storedResult(result),
      verdict: judgement.verdict,
      judgement,
      ...usageColumns(result),
    };
    out.attempts.push(write);
    const artifacts: ArtifactWrite[] = [];
    for (const a of result.artifacts) {
      const d = a.diff ? parseUnifiedDiff(a.diff) : null;
      artifacts.push({
        id: randomUUID(),
        attempt_id: end.attemptId,
        path: clean(a.path, 1000) ?? "",
        operation: a.operation,
        content: clean(a.content, 4 * 1024 * 1024),
        diff: clean(a.diff, 4 * 1024 * 1024),
        lines_added: d?.added.length ?? 0,
        lines_removed: d?.removed ?? 0,
      });
    }
    out.artifacts.push(...artifacts);
    const redispatch = judgement.verdict === "changes_requested" && row.redispatches < this.settings.maxAutoRedispatch;
    const change: StateChange = {
      taskId: end.taskId,
      from: "running",
      steps: [
        {
          to: verdictState,
          by: "system",
          actor: SYSTEM_ACTORS.council,
          eventActor: "council",
          action: "task.verdict",
          reason: clean(judgement.rationale, 2000),
          data: {
            ...base,
            verdict: judgement.verdict,
            summary: clean(result.summary, 500),
            artifacts: result.artifacts.length,
            ...(awaitsApproval ? { awaitingApproval: true } : {}),
          },
          before: { attempt: end.number },
          after: { ...base, verdict: judgement.verdict, artifacts: result.artifacts.length },
        },
      ],
      set: { failures: 0, redispatches: row.redispatches, next_critique: null },
      provenance: [
        taskResult(end.taskId, attemptRef, end.workerName, result, null, stored(write, artifacts)),
        taskVerdict(end.taskId, attemptRef, judgement),
      ],
    };
    if (redispatch) {
      const critique: Critique = critiqueFrom(end.number, judgement);
      const n = row.redispatches + 1;
      change.steps.push({
        to: "queued",
        by: "system",
        actor: SYSTEM_ACTORS.council,
        eventActor: "system",
        action: "task.retry",
        reason: `Automatic re-dispatch ${n} of ${this.settings.maxAutoRedispatch} with the council's critique.`,
        data: {
          ...base,
          automatic: true,
          redispatch: n,
          of: this.settings.maxAutoRedispatch,
          findings: critique.findings.length,
        },
        before: { attempt: end.number },
        after: { automatic: true, redispatch: n, findings: critique.findings.length },
      });
      // The task's reason stays the council's rationale: what the next attempt must address.
      change.set = {
        failures: 0,
        redispatches: n,
        requeued: true,
        next_critique: critique,
        state_reason: clean(judgement.rationale, 2000),
      };
    }
    out.changes.push(change);
  }
}

/** The rows an attempt's end writes, as its result record binds them (provenance/rows.ts). */
function stored(write: AttemptWrite, artifacts: ArtifactWrite[]): StoredAttemptEnd {
  return {
    outcome: { state: write.state, error: write.error, summary: write.summary, result: write.result },
    artifacts: artifacts.map((a) => ({
      id: a.id,
      path: a.path,
      operation: a.operation,
      content_sha256: textDigest(a.content),
      diff_sha256: textDigest(a.diff),
      lines_added: a.lines_added,
      lines_removed: a.lines_removed,
    })),
  };
}

/**
 * A batch's attempt rows and artifacts in one statement, with the audit entries its state changes
 * added to the unit (folded in: one statement fewer). The provenance records and task events follow,
 * last in the unit (db/unit-of-work.ts): that part is serialized until the commit, so it holds only
 * what must be ordered.
 */
async function writeEnds(unit: UnitOfWork, planned: Planned): Promise<void> {
  await unit.tx.$executeRawUnsafe(
    `WITH a AS (
       UPDATE attempts a SET state = x.state::"AttemptState", finished_at = now(), tries = x.tries,
              error = x.error, summary = x.summary, result = x.result, verdict = x.verdict,
              judgement = x.judgement, lease_owner = NULL, lease_expires_at = NULL,
              input_tokens = x.input_tokens, output_tokens = x.output_tokens, cost_usd = x.cost_usd, model = x.model
         FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, state text, tries int, error text, summary text,
              result jsonb, verdict text, judgement jsonb, input_tokens int, output_tokens int,
              cost_usd numeric, model text)
        WHERE a.id = x.id
     ), ar AS (
       INSERT INTO artifacts (id, attempt_id, path, operation, content, diff, lines_added, lines_removed)
       SELECT x.id, x.attempt_id, x.path, x.operation, x.content, x.diff, x.lines_added, x.lines_removed
         FROM jsonb_to_recordset($2::jsonb) AS x(id uuid, attempt_id uuid, path text, operation text, content text,
              diff text, lines_added int, lines_removed int)
     )
     ${auditInsertSql("$3")}`,
    JSON.stringify(planned.attempts),
    JSON.stringify(planned.artifacts),
    unit.foldAudit(),
  );
}

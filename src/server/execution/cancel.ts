import { SYSTEM_ACTORS } from "../audit/trail.js";
import type { Database } from "../db/database.js";
import type { UnitOfWork, UnitOfWorkRunner } from "../db/unit-of-work.js";
import { taskCancel, taskResult } from "../tasks/decisions.js";
import { applyStateChanges } from "../tasks/state-changes.js";
import { traceCancel, tracingEnabled } from "../telemetry/tracing.js";
import type { AttemptRunner } from "./attempt-runner.js";
import * as sql from "./statements.js";
import type { WorkerClient } from "./worker-client.js";

/** Ends a cancel: `canceling` → `canceled`, audited, and on the provenance log with who, why and confirmed. */
export async function cancelDone(
  unit: UnitOfWork,
  taskId: string,
  confirmed: boolean,
  detail: string,
): Promise<boolean> {
  const [task] = await sql.lockCanceling(unit.tx, taskId);
  if (!task) return false;
  await applyStateChanges(
    unit,
    [
      {
        taskId,
        from: "canceling",
        steps: [
          {
            to: "canceled",
            by: "system",
            actor: SYSTEM_ACTORS.engine,
            eventActor: "system",
            action: "task.cancel_done",
            data: { confirmed, detail },
            after: { confirmed, detail, requestedBy: task.by, reason: task.reason },
          },
        ],
        set: { cancel_confirmed: confirmed, state_reason: task.reason },
        provenance: [taskCancel(taskId, { by: task.by, reason: task.reason, confirmed, detail })],
      },
    ],
    { strict: true },
  );
  return true;
}

/**
 * Second half of a cancel, for a task already moved to `canceling`: aborts the request in flight
 * (when it runs here), tells the worker through `/cancel`, and ends the task `canceled`, confirmed
 * only if the worker answered within the cancel timeout (or nothing was running).
 */
export async function cancelRunning(
  deps: { db: Database; units: UnitOfWorkRunner; client: WorkerClient; runner: AttemptRunner },
  taskId: string,
  reason: string,
): Promise<{ confirmed: boolean; detail: string }> {
  const attempt = await sql.runningAttemptOf(deps.db, taskId);
  let outcome = { confirmed: true, detail: "nothing was running" };
  if (attempt) {
    const stopped = deps.runner.takeOver(attempt.id, `Canceled: ${reason}`);
    const worker = attempt.worker;
    outcome = worker
      ? await traceCancel(
          {
            taskId,
            number: attempt.number,
            workerName: worker.name,
            traceParent: tracingEnabled() ? await sql.traceParentOf(deps.db, taskId) : null,
          },
          () => deps.client.cancel(worker, { taskId, attempt: attempt.number, reason }),
        )
      : { confirmed: false, detail: "the attempt's worker was removed" };
    await stopped;
  }
  await deps.units.run(async (unit) => {
    if (attempt) {
      const error = `Canceled: ${reason}`.slice(0, 10_000);
      // Only if the cancel ended the attempt: an attempt that finished meanwhile has its result record.
      if (await sql.cancelAttempt(unit.tx, attempt.id, error)) {
        unit.provenance.push(
          taskResult(taskId, { id: attempt.id, number: attempt.number }, attempt.worker?.name ?? null, null, error, {
            // Still running when canceled: no summary or result was stored.
            outcome: { state: "canceled", error, summary: null, result: null },
            artifacts: [],
          }),
        );
      }
    }
    await cancelDone(unit, taskId, outcome.confirmed, outcome.detail);
  });
  return outcome;
}

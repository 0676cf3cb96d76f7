import type { ApprovalDecision, ApprovalTierPolicy } from "../../shared/approvals.js";
import { type Actor, hasRole } from "../../shared/roles.js";
import type { TaskState } from "../../shared/task-state.js";
import type { ClientInfo } from "../audit/service.js";
import type { Database } from "../db/database.js";
import type { UnitOfWorkRunner } from "../db/unit-of-work.js";
import { DomainError, notFound } from "../errors.js";
import type { NewProvenanceRecord } from "../provenance/service.js";
import { applyStateChanges } from "./state-changes.js";

/** At most this many waiting tasks are listed on the approval queue (oldest first); `count` says how many wait. */
export const APPROVAL_QUEUE_LIMIT = 200;

const tierOf = (riskTier: number): 1 | 2 | 3 => (riskTier === 1 || riskTier === 3 ? riskTier : 2);

/** The decision's record on the provenance log: who decided, with what note, after how long a wait. */
export function taskApproval(
  taskId: string,
  decision: ApprovalDecision,
  d: { by: string; note: string | null; attempt: number; waitedMs: number; policy: ApprovalTierPolicy },
): NewProvenanceRecord {
  return {
    kind: decision === "approve" ? "task.approve" : "task.reject",
    taskId,
    payload: {
      by: d.by,
      note: d.note,
      attempt: d.attempt,
      waitedMs: d.waitedMs,
      approver: d.policy.approver,
      fourEyes: d.policy.fourEyes,
    },
  };
}

interface LockedTask {
  state: TaskState;
  risk_tier: number;
  created_by: string;
  attempt: number;
  waited_ms: number;
}

/**
 * Human approval by risk tier. The council's accepting verdict on a task whose tier requires approval
 * leaves it `awaiting_approval` (execution/finisher.ts); here a person approves it (→ accepted) or
 * rejects it with a note (→ rejected): the tier's approver rule and four eyes are checked, and the
 * change is one unit of work with its audit entry, provenance record and event.
 */
export class ApprovalService {
  constructor(
    private readonly db: Database,
    private readonly units: UnitOfWorkRunner,
    private readonly policy: Record<1 | 2 | 3, ApprovalTierPolicy>,
  ) {}

  policyFor(riskTier: number): ApprovalTierPolicy {
    return this.policy[tierOf(riskTier)];
  }

  /**
   * Why this person may not approve or reject a task of this tier created by `createdBy`; null when they may.
   * The checks in order: the role (operator at least), the tier's approver rule, four eyes.
   */
  refusal(actor: Actor, task: { riskTier: number; createdBy: string }): string | null {
    const policy = this.policyFor(task.riskTier);
    if (!hasRole(actor.role, "operator")) {
      return `Approving or rejecting a task needs the operator role at least; you are ${actor.role}.`;
    }
    if (policy.approver === "admin" && actor.role !== "admin") {
      return `Tier ${task.riskTier}'s policy lets only an admin approve or reject its tasks; you are ${actor.role}.`;
    }
    if (policy.fourEyes && task.createdBy === actor.id) {
      return `Four eyes: you created this task, and tier ${task.riskTier}'s policy wants someone else to approve or reject it.`;
    }
    return null;
  }

  approve(actor: Actor, id: string, note: string | undefined, client?: ClientInfo) {
    return this.decide(actor, id, "approve", note?.trim() ? note.trim() : null, client);
  }

  reject(actor: Actor, id: string, note: string, client?: ClientInfo) {
    return this.decide(actor, id, "reject", note.trim(), client);
  }

  private async decide(
    actor: Actor,
    id: string,
    decision: ApprovalDecision,
    note: string | null,
    client: ClientInfo | undefined,
  ): Promise<{ id: string; state: TaskState; waitedMs: number }> {
    const to: TaskState = decision === "approve" ? "accepted" : "rejected";
    const verb = decision === "approve" ? "approved" : "rejected";
    let waitedMs = 0;
    await this.units.run(async (unit) => {
      // Locked: the decision is taken on the row as it is, and a cancel or another decision waits for it.
      const [task] = await unit.tx.$queryRawUnsafe<LockedTask[]>(
        `SELECT state::text AS state, risk_tier, created_by, attempt,
                GREATEST(0, floor(extract(epoch FROM (now() - updated_at)) * 1000))::float8 AS waited_ms
           FROM tasks WHERE id = $1::uuid FOR UPDATE`,
        id,
      );
      if (!task) throw notFound("Task", id);
      const refused = this.refusal(actor, { riskTier: task.risk_tier, createdBy: task.created_by });
      if (refused) throw new DomainError("FORBIDDEN", refused);
      if (task.state !== "awaiting_approval") {
        throw new DomainError(
          "CONFLICT",
          `Task ${id} is ${task.state}, not awaiting_approval: only a task waiting for approval can be ${verb}.`,
        );
      }
      const policy = this.policyFor(task.risk_tier);
      waitedMs = Number(task.waited_ms);
      const reason =
        decision === "approve"
          ? `Approved by ${actor.id}${note ? `: ${note}` : "."}`
          : `Rejected at approval by ${actor.id}: ${note}`;
      await applyStateChanges(
        unit,
        [
          {
            taskId: id,
            from: "awaiting_approval",
            steps: [
              {
                to,
                by: actor.role === "admin" ? "admin" : "operator",
                actor,
                eventActor: actor.id,
                action: decision === "approve" ? "task.approve" : "task.reject",
                reason,
                data: { decision, note, waitedMs, attempt: task.attempt },
                before: { attempt: task.attempt },
                after: { note, waitedMs },
                ...(client ? { client } : {}),
              },
            ],
            set: { state_reason: reason },
            provenance: [taskApproval(id, decision, { by: actor.id, note, attempt: task.attempt, waitedMs, policy })],
          },
        ],
        { strict: true },
      );
    });
    return { id, state: to, waitedMs };
  }

  /**
   * The tasks waiting for approval, oldest wait first (up to APPROVAL_QUEUE_LIMIT), each with why the caller
   * may not decide on it (null: they may), and how many wait in all.
   */
  async queue(actor: Actor) {
    const where = { state: "awaiting_approval" as const };
    const [rows, count] = await Promise.all([
      this.db.prisma.task.findMany({
        where,
        orderBy: [{ updatedAt: "asc" }, { seq: "asc" }],
        take: APPROVAL_QUEUE_LIMIT,
        select: {
          id: true,
          title: true,
          priority: true,
          riskTier: true,
          mode: true,
          capability: true,
          attempt: true,
          createdBy: true,
          createdAt: true,
          updatedAt: true,
        },
      }),
      this.db.prisma.task.count({ where }),
    ]);
    return {
      count,
      items: rows.map((t) => {
        const { updatedAt, ...rest } = t;
        return {
          ...rest,
          /** When the council's accepting verdict put it in the queue. */
          waitingSince: updatedAt,
          policy: this.policyFor(t.riskTier),
          refusal: this.refusal(actor, t),
        };
      }),
    };
  }

  /** Whether the caller may decide on one task (the task page's buttons), with the tier's policy. */
  async permission(actor: Actor, id: string) {
    const t = await this.db.prisma.task.findUnique({ where: { id }, select: { riskTier: true, createdBy: true } });
    if (!t) throw notFound("Task", id);
    return { policy: this.policyFor(t.riskTier), refusal: this.refusal(actor, t) };
  }
}

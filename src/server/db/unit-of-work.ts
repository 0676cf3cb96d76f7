import { auditRowsJson, type NewAuditEntry } from "../audit/service.js";
import type { Trail } from "../audit/trail.js";
import type { NewTaskEvent } from "../events/append.js";
import type { NewProvenanceRecord } from "../provenance/service.js";
import type { Tx } from "./database.js";

/**
 * One change to the database, written in ordered phases inside one transaction:
 *
 *   1. rows       the caller's own statements (tasks, attempts, artifacts), through `tx`;
 *   2. audit      every entry pushed to `audit`, in the last statement, unless a rows statement took
 *                 them along (`foldAudit`, which saves the hot path a statement);
 *   3. provenance every record pushed to `provenance`, bound to the audit entries and events of its
 *                 task by digest, sealed in this process's turn on the log with one signed checkpoint;
 *   4. events     every task event pushed to `events`, under the event log's lock, last;
 *   5. commit     then each after-commit hook, in order: the unit's own (`afterCommit`) and the
 *                 runner's (wake the dispatcher, notify the live hubs).
 *
 * Phases 2 to 4 are one statement (Trail.writeOrdered). `fn` may run again on a fresh unit when the
 * provenance log was appended to by another process meanwhile, so it must not act outside `tx`.
 */
export class UnitOfWork {
  readonly audit: NewAuditEntry[] = [];
  readonly provenance: NewProvenanceRecord[] = [];
  readonly events: NewTaskEvent[] = [];
  private readonly hooks: (() => void)[] = [];
  private folded = 0;

  constructor(readonly tx: Tx) {}

  /**
   * The audit entries pushed so far and not yet written, as the JSON parameter of `auditInsertSql`,
   * for a rows statement to insert them: they are then not inserted again at the end (they are still
   * bound to the provenance records).
   */
  foldAudit(): string {
    const json = auditRowsJson(this.audit.slice(this.folded));
    this.folded = this.audit.length;
    return json;
  }

  /** Runs once the transaction has committed (never if it rolls back). */
  afterCommit(hook: () => void): void {
    this.hooks.push(hook);
  }

  /** @internal Phases 2–4. */
  async write(trail: Trail): Promise<void> {
    await trail.writeOrdered(this.tx, {
      audit: this.audit,
      unwrittenAudit: this.audit.slice(this.folded),
      provenance: this.provenance,
      events: this.events,
    });
  }

  /** @internal Phase 5. */
  committed(): void {
    for (const hook of this.hooks) hook();
  }
}

/** What every committed unit triggers, given what it wrote. */
export type AfterCommit = (unit: UnitOfWork) => void;

/**
 * Runs units of work. One per process (services.ts); its after-commit hooks are set once there:
 * a unit that wrote task events notifies the live hubs, one that queued a task wakes the dispatcher.
 */
export class UnitOfWorkRunner {
  private readonly hooks: AfterCommit[] = [];

  constructor(private readonly trail: Trail) {}

  /** Adds a hook run after every committed unit (after the unit's own hooks). */
  onCommit(hook: AfterCommit): void {
    this.hooks.push(hook);
  }

  async run<T>(fn: (unit: UnitOfWork) => Promise<T>): Promise<T> {
    let unit: UnitOfWork | null = null;
    const value = await this.trail.transaction(async (tx) => {
      unit = new UnitOfWork(tx);
      const v = await fn(unit);
      await unit.write(this.trail);
      return v;
    });
    const done = unit as UnitOfWork | null;
    if (done) {
      done.committed();
      for (const hook of this.hooks) hook(done);
    }
    return value;
  }
}

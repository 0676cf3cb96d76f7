import type { Actor } from "../../shared/roles.js";
import { clientInfo, type RequestContext } from "../auth/request.js";
import type { Tx } from "../db/database.js";
import { eventInsertSql, eventRows, type NewTaskEvent } from "../events/append.js";
import { type AuditRowContent, bindRows, type EventRowContent } from "../provenance/rows.js";
import {
  type NewProvenanceRecord,
  type ProvenanceService,
  provenanceInsertSql,
  provenanceRowsJson,
} from "../provenance/service.js";
import { type AuditService, auditInsertSql, auditRowsJson, type ClientInfo, type NewAuditEntry } from "./service.js";

/** Who asked for a change and from where: the actor plus the request's client address and user agent. */
export interface Caller {
  actor: Actor;
  client?: ClientInfo;
}

/** The caller of a tRPC procedure: its actor, client address and user agent. */
export const callerOf = (ctx: { actor: Actor; clientAddress: string | null; request?: RequestContext }): Caller => ({
  actor: ctx.actor,
  client: clientInfo(ctx.clientAddress, ctx.request),
});

export type AuditActor = NewAuditEntry["actor"];

/** The agency's own actors, for state changes no person asked for. */
export const SYSTEM_ACTORS = {
  /** Claims queued tasks for workers. */
  dispatcher: { kind: "system", id: "dispatcher" },
  /** Judges completed attempts. */
  council: { kind: "system", id: "council" },
  /** Ends attempts that failed without a worker's word (timeouts, breakers, shutdown). */
  engine: { kind: "system", id: "engine" },
  /** Takes over attempts whose lease expired and cancels a dead process left half done. */
  recovery: { kind: "system", id: "recovery" },
  /** Workers declared in configuration. */
  config: { kind: "system", id: "config" },
} as const satisfies Record<string, AuditActor>;

export const workerActor = (workerName: string): AuditActor => ({ kind: "worker", id: workerName });

/**
 * The audit trail and the provenance log written together, inside the transaction of the change
 * they describe (the last phases of a unit of work).
 */
export class Trail {
  constructor(
    readonly audit: AuditService,
    readonly provenance: ProvenanceService,
  ) {}

  /** A transaction for changes that write to the log (see `ProvenanceService.rawTransaction`); use a unit of work. */
  transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    return this.provenance.transaction(fn);
  }

  /**
   * The ordered end of a unit of work (db/unit-of-work.ts), in one statement: the audit entries not
   * yet written, then the provenance records (sealed in this process's turn on the log, which lasts
   * until the commit: each bound by digest to its task's audit entries and events of this
   * transaction, `provenance:verify --rows` re-reads them), then the task events under the event-log
   * lock (taken after the row locks and the log's, like every other writer).
   */
  async writeOrdered(
    tx: Tx,
    w: {
      /** Every audit entry of the transaction, written before or now: the records bind them all. */
      audit: NewAuditEntry[];
      unwrittenAudit: NewAuditEntry[];
      provenance: NewProvenanceRecord[];
      events: NewTaskEvent[];
    },
  ): Promise<void> {
    if (!w.unwrittenAudit.length && !w.provenance.length && !w.events.length) return;
    const rows = eventRows(w.events);
    const bound = w.provenance.length
      ? bindRows(w.provenance, JSON.parse(auditRowsJson(w.audit)) as AuditRowContent[], rows as EventRowContent[])
      : w.provenance;
    const sealed = await this.provenance.seal(tx, bound);
    await tx.$executeRawUnsafe(
      `WITH audit AS (${auditInsertSql("$3")}
       ), chain AS (${provenanceInsertSql("$2")}
       )
       ${eventInsertSql("$1", "chain")}`,
      JSON.stringify(rows),
      provenanceRowsJson(sealed),
      auditRowsJson(w.unwrittenAudit),
    );
  }
}

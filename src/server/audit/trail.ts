import type { Actor } from "../../shared/roles.js";
import { clientInfo, type RequestContext } from "../auth/request.js";
import type { Prisma } from "../db/generated/client.js";
import { EVENT_LOG_LOCK_KEY, type NewTaskEvent } from "../events/append.js";
import { type AuditRowContent, bindRows, type EventRowContent } from "../provenance/rows.js";
import {
  type NewProvenanceRecord,
  type ProvenanceService,
  provenanceInsertSql,
  provenanceRowsJson,
  type SqlTx,
} from "../provenance/service.js";
import { type AuditService, auditInsertSql, auditRowsJson, type ClientInfo, type NewAuditEntry } from "./service.js";

type Tx = Prisma.TransactionClient;

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

/** SQL and parameters for folding a change's trail into a statement the change runs anyway. */
export interface PreparedTrail {
  auditJson: string;
  provenanceJson: string;
}

/**
 * The audit trail and the provenance log written together, inside the transaction of the change
 * they describe. Call before `appendTaskEvents`: the log's lock must be taken before the event log's.
 */
export class Trail {
  constructor(
    readonly audit: AuditService,
    readonly provenance: ProvenanceService,
  ) {}

  /**
   * A transaction for changes that write to the chain: see `ProvenanceService.transaction` (appends
   * without the lock round trips; `fn` may run again if another process appended first).
   */
  transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    return this.provenance.transaction(fn);
  }

  /** `transaction` for raw-SQL-only work (see `ProvenanceService.rawTransaction`). */
  rawTransaction<T>(fn: (tx: SqlTx) => Promise<T>): Promise<T> {
    return this.provenance.rawTransaction(fn);
  }

  /**
   * Both in one INSERT statement (plus the chain lock and head read when there are provenance records).
   * `events`: the task events the caller appends next in this transaction (`appendTaskEvents`), bound
   * to the records by digest like the audit entries.
   */
  async write(
    tx: Tx,
    audit: NewAuditEntry[],
    provenance: NewProvenanceRecord[] = [],
    events: NewTaskEvent[] = [],
  ): Promise<void> {
    if (!audit.length && !provenance.length) return;
    const p = await this.prepare(tx, audit, provenance, events);
    await tx.$executeRawUnsafe(
      `WITH audit AS (${auditInsertSql("$1")}) ${provenanceInsertSql("$2")}`,
      p.auditJson,
      p.provenanceJson,
    );
  }

  /**
   * Seals the provenance records (takes the log lock, reads the head's frontier, hashes the leaves and
   * signs the batch's checkpoint in process)
   * and returns the JSON parameters for `auditInsertSql` and `provenanceInsertSql`, so a batch can
   * fold both inserts into one statement it runs anyway.
   */
  async prepare(
    tx: SqlTx,
    audit: NewAuditEntry[],
    provenance: NewProvenanceRecord[],
    /** Events this transaction writes besides (appended by the caller): bound to the records too. */
    events: NewTaskEvent[] = [],
  ): Promise<PreparedTrail> {
    const auditJson = auditRowsJson(audit);
    // Each record carries the digests of its task's audit entries and events written with it (provenance/rows.ts).
    const bound = provenance.length
      ? bindRows(provenance, JSON.parse(auditJson) as AuditRowContent[], eventRowsOf(events))
      : provenance;
    const sealed = await this.provenance.seal(tx, bound);
    return { auditJson, provenanceJson: provenanceRowsJson(sealed) };
  }

  /**
   * What must be ordered, last in a chained transaction and in one statement: the provenance records
   * (sealed in this process's turn on the chain, which lasts until the commit), then the task events
   * under the event-log lock (taken after the row locks and the chain, like every other writer).
   */
  async appendOrdered(
    tx: SqlTx,
    provenance: NewProvenanceRecord[],
    events: NewTaskEvent[],
    /** The audit entries this transaction wrote for these records (already inserted): bound to them by digest. */
    audit: NewAuditEntry[] = [],
  ): Promise<void> {
    if (!provenance.length && !events.length) return;
    const eventRows = eventRowsOf(events);
    // Each record carries the digests of its task's state-change events and audit entries (provenance/rows.ts).
    const bound = provenance.length
      ? bindRows(provenance, audit.length ? (JSON.parse(auditRowsJson(audit)) as AuditRowContent[]) : [], eventRows)
      : provenance;
    const sealed = await this.provenance.seal(tx, bound);
    await tx.$executeRawUnsafe(
      `WITH chain AS (${provenanceInsertSql("$2")}
       ), lock AS (
         SELECT pg_advisory_xact_lock(${EVENT_LOG_LOCK_KEY}::bigint) FROM (SELECT count(*) FROM chain) c
       )
       INSERT INTO task_events (task_id, type, from_state, to_state, actor, data)
       SELECT (e.v->>'task_id')::uuid, e.v->>'type', (e.v->>'from_state')::"TaskState",
              (e.v->>'to_state')::"TaskState", e.v->>'actor', e.v->'data'
         FROM lock, jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(v, n)
        ORDER BY e.n`,
      JSON.stringify(eventRows),
      provenanceRowsJson(sealed),
    );
  }
}

/** Task events as their rows store them (what `appendTaskEvents` and `appendOrdered` write). */
function eventRowsOf(events: NewTaskEvent[]): EventRowContent[] {
  return events.map((e) => ({
    task_id: e.taskId,
    type: e.type,
    from_state: e.fromState ?? null,
    to_state: e.toState ?? null,
    actor: e.actor,
    data: e.data ?? {},
  }));
}

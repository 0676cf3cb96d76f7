import type { Database, SqlRunner } from "../db/database.js";
import { canonicalJson, sha256Hex } from "./canonical.js";

/**
 * Rows bound to the log. A record carries, in `payload.rows`, the digests of the rows written in its
 * transaction that describe its task:
 * - `audit: [[action, digest]…]` and `events: [[toState, digest]…]`: the audit entries (task resource)
 *   and state-change task events, on the last record of the task in the statement;
 * - `attempt: [attemptId, digest]`: the attempt's outcome columns (state, error, summary, result), on
 *   `task.result`;
 * - and the `task.result` record's own `artifacts: [{ id, path, operation, digest }…]` lists every
 *   artifact row stored for that attempt (an empty list: none may appear later);
 * - `judgement: [attemptId, digest]`: the attempt's verdict and judgement columns, on `task.verdict`
 *   and on each `task.override` (which rewrites the judgement: the latest record binds).
 * A `task.created` record carries the task's title, mode, priority, tier, capability, creator and spec
 * digest already. Digests are taken over the values exactly as stored (JSON columns as canonical JSON,
 * which is blind to the key order jsonb keeps), computed from the values in hand when writing.
 * `verifyRows` re-reads those rows and names any that were edited or deleted behind the log's back.
 * The rows' own timestamps and database-assigned ids are not part of a digest (they are assigned by
 * the database after the record is sealed); the record's time is in its leaf.
 */

/** The stored columns of an audit entry that a digest covers, as `auditRowsJson` writes them. */
export interface AuditRowContent {
  actor_kind: string;
  actor_id: string;
  action: string;
  resource_type: string;
  resource_id: string | null;
  before: unknown;
  after: unknown;
  client_address: string | null;
  user_agent: string | null;
}

export interface EventRowContent {
  task_id: string;
  type: string;
  from_state: string | null;
  to_state: string | null;
  actor: string;
  data: unknown;
}

export const auditRowDigest = (r: AuditRowContent): string =>
  sha256Hex(
    canonicalJson({
      actor_kind: r.actor_kind,
      actor_id: r.actor_id,
      action: r.action,
      resource_type: r.resource_type,
      resource_id: r.resource_id,
      before: r.before ?? null,
      after: r.after ?? null,
      client_address: r.client_address,
      user_agent: r.user_agent,
    }),
  );

export const eventRowDigest = (r: EventRowContent): string =>
  sha256Hex(
    canonicalJson({
      task_id: r.task_id,
      type: r.type,
      from_state: r.from_state ?? null,
      to_state: r.to_state ?? null,
      actor: r.actor,
      data: r.data ?? {},
    }),
  );

/** An attempt's outcome columns as the attempt's end stores them. */
export interface AttemptOutcomeContent {
  state: string;
  error: string | null;
  summary: string | null;
  result: unknown;
}

export const attemptOutcomeDigest = (r: AttemptOutcomeContent): string =>
  sha256Hex(
    canonicalJson({ state: r.state, error: r.error ?? null, summary: r.summary ?? null, result: r.result ?? null }),
  );

/** The council's verdict column and the judgement (with any override) as stored on the attempt. */
export const judgementRowDigest = (r: { verdict: string | null; judgement: unknown }): string =>
  sha256Hex(canonicalJson({ verdict: r.verdict ?? null, judgement: r.judgement ?? null }));

/** SHA-256 (hex) of a text column's UTF-8 bytes: what Postgres's `sha256(convert_to(col, 'UTF8'))` gives. */
export const textDigest = (text: string | null): string | null => (text === null ? null : sha256Hex(text));

/**
 * An artifact row by the digests of its content and diff rather than the text itself, so the verifier
 * lets the database hash megabytes of content instead of reading it.
 */
export interface ArtifactRowHashes {
  path: string;
  operation: string;
  content_sha256: string | null;
  diff_sha256: string | null;
  lines_added: number;
  lines_removed: number;
}

export const artifactRowDigest = (r: ArtifactRowHashes): string =>
  sha256Hex(
    canonicalJson({
      path: r.path,
      operation: r.operation,
      content: r.content_sha256,
      diff: r.diff_sha256,
      lines_added: r.lines_added,
      lines_removed: r.lines_removed,
    }),
  );

export interface BoundRows {
  audit?: [string, string][];
  events?: [string, string][];
  attempt?: [string, string];
  judgement?: [string, string];
}

interface Bindable {
  kind: string;
  taskId?: string | null;
  payload: unknown;
}

/**
 * Adds to the last record of each task in `records` the digests of that task's audit entries and
 * state-change events among `audit` and `events` (what the same statement writes).
 */
export function bindRows<T extends Bindable>(records: T[], audit: AuditRowContent[], events: EventRowContent[]): T[] {
  if (!records.length || (!audit.length && !events.length)) return records;
  const lastOf = new Map<string, number>();
  records.forEach((r, i) => {
    if (r.taskId && r.payload && typeof r.payload === "object" && !Array.isArray(r.payload)) lastOf.set(r.taskId, i);
  });
  if (!lastOf.size) return records;
  const bound = new Map<number, BoundRows>();
  const slot = (taskId: string | null) => {
    const i = taskId === null ? undefined : lastOf.get(taskId);
    if (i === undefined) return null;
    const existing = bound.get(i);
    if (existing) return existing;
    const b: BoundRows = {};
    bound.set(i, b);
    return b;
  };
  for (const a of audit) {
    if (a.resource_type !== "task") continue;
    const b = slot(a.resource_id);
    if (!b) continue;
    b.audit ??= [];
    b.audit.push([a.action, auditRowDigest(a)]);
  }
  for (const e of events) {
    if (!e.to_state) continue;
    const b = slot(e.task_id);
    if (!b) continue;
    b.events ??= [];
    b.events.push([e.to_state, eventRowDigest(e)]);
  }
  if (!bound.size) return records;
  return records.map((r, i) => {
    const rows = bound.get(i);
    if (!rows) return r;
    // A record may bind its own rows already (an attempt's result, a judgement): both go in.
    const payload = r.payload as Record<string, unknown> & { rows?: BoundRows };
    return { ...r, payload: { ...payload, rows: { ...payload.rows, ...rows } } };
  });
}

export interface RowFinding {
  table: "tasks" | "audit_entries" | "task_events" | "attempts" | "artifacts";
  /**
   * The row's id (tasks.id, audit_entries.id, task_events.seq, attempts.id, artifacts.id); null when the
   * row is gone and the record does not name it (deleted artifacts and attempts are named by their id).
   */
  id: string | null;
  /** The record that binds it. */
  seq: string;
  reason: string;
}

export interface RowsReport {
  ok: boolean;
  /** Rows compared with their digests. */
  checked: number;
  findings: RowFinding[];
}

interface TaskRow {
  id: string;
  state: string;
  description: string;
  title: string;
  mode: string;
  priority: string;
  risk_tier: number;
  capability: string;
  spec: unknown;
  created_by: string;
}

interface CreatedPayload {
  title?: unknown;
  mode?: unknown;
  priority?: unknown;
  riskTier?: unknown;
  capability?: unknown;
  specDigest?: unknown;
  by?: { id?: unknown };
}

const TASKS_PER_PAGE = 200;

/**
 * Re-reads the rows the log's records bind and compares them with the digests the records carry,
 * a page of tasks at a time. Run after the log itself verified: it trusts the records' payloads.
 */
export async function verifyRows(db: Database): Promise<RowsReport> {
  const findings: RowFinding[] = [];
  let checked = 0;
  let after = "";
  for (;;) {
    const ids = (
      await db.query<{ task_id: string }>(
        `SELECT DISTINCT task_id FROM provenance_records WHERE task_id > $1 ORDER BY task_id LIMIT ${TASKS_PER_PAGE}`,
        [after],
      )
    ).map((r) => r.task_id);
    if (!ids.length) break;
    after = ids[ids.length - 1] as string;
    // Only ids that are task ids (uuids) can have rows; anything else on the log binds none.
    const uuids = ids.filter((id) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id));
    const { records, tasks, audit, events, attempts, artifacts } = await db.transaction((tx) =>
      readPage(tx, ids, uuids),
    );
    const taskById = new Map(tasks.map((t) => [t.id, t]));
    const rowsOf = <R>(list: R[], key: (r: R) => string | null) => {
      const m = new Map<string, R[]>();
      for (const r of list) {
        const k = key(r);
        if (k === null) continue;
        const l = m.get(k);
        if (l) l.push(r);
        else m.set(k, [r]);
      }
      return m;
    };
    const auditByTask = rowsOf(audit, (a) => a.resource_id);
    const eventsByTask = rowsOf(events, (e) => e.task_id);
    const recordsByTask = rowsOf(records, (r) => r.task_id);
    const attemptById = new Map(attempts.map((a) => [a.id, a]));
    const artifactById = new Map(artifacts.map((a) => [a.id, a]));
    const artifactsByAttempt = rowsOf(artifacts, (a) => a.attempt_id);

    for (const [taskId, recs] of recordsByTask) {
      for (const r of recs) {
        if (r.kind !== "task.created") continue;
        checked++;
        const p = r.payload as CreatedPayload;
        const t = taskById.get(taskId);
        if (!t) {
          findings.push({
            table: "tasks",
            id: null,
            seq: r.seq,
            reason: `Task ${taskId} (record ${r.seq}) was deleted.`,
          });
          continue;
        }
        const changed: string[] = [];
        if (p.title !== t.title) changed.push("title");
        if (p.mode !== t.mode) changed.push("mode");
        if (p.priority !== t.priority) changed.push("priority");
        if (p.riskTier !== t.risk_tier) changed.push("risk tier");
        if (p.capability !== t.capability) changed.push("capability");
        if (p.by?.id !== t.created_by) changed.push("creator");
        if (p.specDigest !== sha256Hex(canonicalJson(t.spec ?? null))) changed.push("spec");
        // The description column repeats the spec's, which the digest covers.
        else if (t.description !== ((t.spec as { description?: unknown } | null)?.description ?? "")) {
          changed.push("description");
        }
        if (changed.length) {
          findings.push({
            table: "tasks",
            id: t.id,
            seq: r.seq,
            reason: `Task ${t.id}'s ${changed.join(", ")} no longer match${changed.length === 1 ? "es" : ""} record ${r.seq}: the row was edited.`,
          });
        }
      }
      compareBound(
        "audit_entries",
        recs.flatMap((r) => ((r.payload.rows as BoundRows | undefined)?.audit ?? []).map((b) => ({ seq: r.seq, b }))),
        (auditByTask.get(taskId) ?? []).map((a) => ({ id: a.id, label: a.action, digest: auditRowDigest(a) })),
        findings,
      );
      compareBound(
        "task_events",
        recs.flatMap((r) => ((r.payload.rows as BoundRows | undefined)?.events ?? []).map((b) => ({ seq: r.seq, b }))),
        (eventsByTask.get(taskId) ?? []).map((e) => ({
          id: e.seq,
          label: e.to_state ?? "",
          digest: eventRowDigest(e),
        })),
        findings,
      );
      for (const r of recs) {
        const rows = r.payload.rows as BoundRows | undefined;
        checked += (rows?.audit?.length ?? 0) + (rows?.events?.length ?? 0);
      }
      checked += compareAttempts(recs, attemptById, artifactById, artifactsByAttempt, findings);
      // Every state change is written with a record binding its event: the last one bound is the state.
      let last: { seq: string; state: string } | null = null;
      for (const r of recs) {
        const bound = (r.payload.rows as BoundRows | undefined)?.events;
        const to = bound?.at(-1)?.[0];
        if (to) last = { seq: r.seq, state: to };
      }
      const t = taskById.get(taskId);
      if (last && t) {
        checked++;
        if (t.state !== last.state) {
          findings.push({
            table: "tasks",
            id: t.id,
            seq: last.seq,
            reason: `Task ${t.id} is ${t.state}, but the last state change, bound by record ${last.seq}, made it ${last.state}: the row was edited.`,
          });
        }
      }
    }
    if (ids.length < TASKS_PER_PAGE) break;
  }
  return { ok: findings.length === 0, checked, findings };
}

/**
 * One page's records and rows in one snapshot (a read-only REPEATABLE READ transaction): a change
 * committing meanwhile (an override rewriting a judgement, a task changing state) is either wholly
 * seen, record and rows, or not at all, so a running server is not reported as edited.
 */
async function readPage(tx: SqlRunner, ids: string[], uuids: string[]) {
  await tx.exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
  const records = await tx.query<{ seq: string; kind: string; task_id: string; payload: Record<string, unknown> }>(
    `SELECT seq::text AS seq, kind, task_id, payload FROM provenance_records
      WHERE task_id = ANY($1::text[]) AND (kind = 'task.created' OR payload ? 'rows') ORDER BY provenance_records.seq`,
    [ids],
  );
  const [tasks, audit, events, attempts, artifacts] = await Promise.all([
    tx.query<TaskRow>(
      `SELECT id::text AS id, state::text AS state, description, title, mode::text AS mode, priority::text AS priority, risk_tier, capability, spec,
              created_by FROM tasks WHERE id = ANY($1::uuid[])`,
      [uuids],
    ),
    tx.query<AuditRowContent & { id: string }>(
      `SELECT id::text AS id, actor_kind, actor_id, action, resource_type, resource_id, before, after,
              client_address, user_agent
         FROM audit_entries WHERE resource_type = 'task' AND resource_id = ANY($1::text[]) ORDER BY id`,
      [ids],
    ),
    tx.query<EventRowContent & { seq: string }>(
      `SELECT seq::text AS seq, task_id::text AS task_id, type, from_state::text AS from_state,
              to_state::text AS to_state, actor, data
         FROM task_events WHERE task_id = ANY($1::uuid[]) AND to_state IS NOT NULL ORDER BY task_events.seq`,
      [uuids],
    ),
    tx.query<AttemptOutcomeContent & { id: string; verdict: string | null; judgement: unknown }>(
      `SELECT id::text AS id, state::text AS state, error, summary, result, verdict, judgement
         FROM attempts WHERE task_id = ANY($1::uuid[])`,
      [uuids],
    ),
    // The database hashes the content and diff: the verifier never holds megabytes of artifacts.
    tx.query<ArtifactRowHashes & { id: string; attempt_id: string }>(
      `SELECT ar.id::text AS id, ar.attempt_id::text AS attempt_id, ar.path, ar.operation,
              encode(sha256(convert_to(ar.content, 'UTF8')), 'hex') AS content_sha256,
              encode(sha256(convert_to(ar.diff, 'UTF8')), 'hex') AS diff_sha256, ar.lines_added, ar.lines_removed
         FROM artifacts ar JOIN attempts a ON a.id = ar.attempt_id WHERE a.task_id = ANY($1::uuid[])`,
      [uuids],
    ),
  ]);
  return { records, tasks, audit, events, attempts, artifacts };
}

type AttemptRow = AttemptOutcomeContent & { id: string; verdict: string | null; judgement: unknown };
type ArtifactRow = ArtifactRowHashes & { id: string; attempt_id: string };

/**
 * An attempt's outcome, its artifacts and its judgement against the latest record (in log order) that
 * binds each: a `task.override` rewrites the judgement and binds the new one. Returns the rows compared.
 */
function compareAttempts(
  recs: { seq: string; payload: Record<string, unknown> }[],
  attemptById: Map<string, AttemptRow>,
  artifactById: Map<string, ArtifactRow>,
  artifactsByAttempt: Map<string, ArtifactRow[]>,
  findings: RowFinding[],
): number {
  const outcomeOf = new Map<string, { seq: string; digest: string; artifacts?: [string, string][] }>();
  const judgementOf = new Map<string, { seq: string; digest: string; verdict: unknown }>();
  for (const r of recs) {
    const rows = r.payload.rows as BoundRows | undefined;
    if (rows?.attempt) {
      const listed = r.payload.artifacts as { id?: unknown; digest?: unknown }[] | undefined;
      const artifacts = Array.isArray(listed)
        ? listed.map((a): [string, string] => [String(a.id), String(a.digest)])
        : undefined;
      outcomeOf.set(rows.attempt[0], { seq: r.seq, digest: rows.attempt[1], artifacts });
    }
    if (rows?.judgement) {
      judgementOf.set(rows.judgement[0], { seq: r.seq, digest: rows.judgement[1], verdict: r.payload.verdict });
    }
  }
  let checked = 0;
  const gone = (id: string, seq: string) =>
    findings.push({
      table: "attempts",
      id,
      seq,
      reason: `Attempt ${id}, bound by record ${seq}, is gone from attempts: the row was deleted.`,
    });
  for (const [attemptId, bound] of outcomeOf) {
    checked++;
    const a = attemptById.get(attemptId);
    if (!a) {
      gone(attemptId, bound.seq);
      continue;
    }
    if (attemptOutcomeDigest(a) !== bound.digest) {
      findings.push({
        table: "attempts",
        id: attemptId,
        seq: bound.seq,
        reason: `Attempt ${attemptId}'s result (state, error, summary or result JSON) no longer matches record ${bound.seq}: the row was edited.`,
      });
    }
    if (!bound.artifacts) continue;
    const boundIds = new Set<string>();
    for (const [artifactId, digest] of bound.artifacts) {
      checked++;
      boundIds.add(artifactId);
      const row = artifactById.get(artifactId);
      if (!row) {
        findings.push({
          table: "artifacts",
          id: artifactId,
          seq: bound.seq,
          reason: `Artifact ${artifactId} of attempt ${attemptId}, bound by record ${bound.seq}, is gone from artifacts: the row was deleted.`,
        });
      } else if (row.attempt_id !== attemptId || artifactRowDigest(row) !== digest) {
        findings.push({
          table: "artifacts",
          id: artifactId,
          seq: bound.seq,
          reason: `Artifact ${artifactId} (${row.path}) no longer matches record ${bound.seq}: the row was edited.`,
        });
      }
    }
    for (const row of artifactsByAttempt.get(attemptId) ?? []) {
      if (boundIds.has(row.id)) continue;
      findings.push({
        table: "artifacts",
        id: row.id,
        seq: bound.seq,
        reason: `Artifact ${row.id} (${row.path}) of attempt ${attemptId} is not among the artifacts record ${bound.seq} bound: the row was added.`,
      });
    }
  }
  for (const [attemptId, bound] of judgementOf) {
    checked++;
    const a = attemptById.get(attemptId);
    if (!a) {
      if (!outcomeOf.has(attemptId)) gone(attemptId, bound.seq);
      continue;
    }
    if (judgementRowDigest(a) !== bound.digest) {
      const what = typeof bound.verdict === "string" && bound.verdict !== a.verdict ? "verdict" : "judgement";
      findings.push({
        table: "attempts",
        id: attemptId,
        seq: bound.seq,
        reason: `Attempt ${attemptId}'s ${what} no longer matches record ${bound.seq}: the row was edited.`,
      });
    }
  }
  return checked;
}

/**
 * Matches the digests the records bound with the rows there are (a multiset: identical rows are
 * possible). A bound digest with no row is an edited row (named: a row with the same action or state
 * that no record binds) or a deleted one; rows no record binds are not the log's to judge.
 */
function compareBound(
  table: "audit_entries" | "task_events",
  bound: { seq: string; b: [string, string] }[],
  rows: { id: string; label: string; digest: string }[],
  findings: RowFinding[],
): void {
  if (!bound.length) return;
  const free = new Map<string, { id: string; label: string }[]>();
  for (const r of rows) {
    const l = free.get(r.digest);
    if (l) l.push(r);
    else free.set(r.digest, [r]);
  }
  const missing: { seq: string; label: string }[] = [];
  for (const { seq, b } of bound) {
    const l = free.get(b[1]);
    if (l?.length) l.shift();
    else missing.push({ seq, label: b[0] });
  }
  const unbound = [...free.values()].flat();
  const what = table === "audit_entries" ? "audit entry" : "state-change event";
  for (const m of missing) {
    const i = unbound.findIndex((r) => r.label === m.label);
    if (i >= 0) {
      const row = unbound.splice(i, 1)[0] as { id: string };
      findings.push({
        table,
        id: row.id,
        seq: m.seq,
        reason: `${table} ${row.id} (${m.label}) no longer matches the ${what} record ${m.seq} bound: the row was edited.`,
      });
    } else {
      findings.push({
        table,
        id: null,
        seq: m.seq,
        reason: `The ${what} (${m.label}) bound by record ${m.seq} is gone from ${table}: the row was deleted or edited beyond recognition.`,
      });
    }
  }
}

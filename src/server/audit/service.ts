import type { z } from "zod";
import type { AuditEntryDto, auditListInputSchema } from "../../shared/audit.js";
import type { Actor } from "../../shared/roles.js";
import type { Database, Tx } from "../db/database.js";
import type { Prisma } from "../db/generated/client.js";

/** Where a request came from; recorded with each entry. */
export interface ClientInfo {
  address?: string | null;
  userAgent?: string | null;
}

export interface NewAuditEntry {
  actor: Pick<Actor, "kind" | "id">;
  /** Dotted verb, e.g. `task.cancel`, `user.create`. */
  action: string;
  resource: { type: string; id?: string | null };
  before?: unknown;
  after?: unknown;
  client?: ClientInfo;
}

// Secrets never go into the trail even if a caller passes a whole row.
const SECRET_KEYS = /password|secret|^token$|tokenhash|masterkey|privatekey|^cookie$|^authorization$/i;
const MAX_STRING = 2000;
const MAX_DEPTH = 6;

/** A JSON-safe, size-bounded copy with secret-looking members replaced. */
export function auditSummary(value: unknown, depth = 0): Prisma.InputJsonValue | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return value.toISOString();
  if (typeof value === "string") return value.length > MAX_STRING ? `${value.slice(0, MAX_STRING)}…` : value;
  if (typeof value === "number") return Number.isFinite(value) ? value : String(value);
  if (typeof value === "boolean") return value;
  if (typeof value === "bigint") return value.toString();
  if (depth >= MAX_DEPTH) return "…";
  if (Array.isArray(value)) return value.slice(0, 100).map((v) => auditSummary(v, depth + 1));
  if (typeof value === "object") {
    const out: Record<string, Prisma.InputJsonValue | null> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (v === undefined || typeof v === "function") continue;
      out[k] = SECRET_KEYS.test(k) ? "[redacted]" : auditSummary(v, depth + 1);
    }
    return out;
  }
  return String(value);
}

const clip = (s: string | null | undefined, n: number) => (s ? s.slice(0, n) : null);

function auditRow(entry: NewAuditEntry) {
  return {
    actor_kind: entry.actor.kind,
    actor_id: clip(entry.actor.id, 128) ?? "unknown",
    action: entry.action.slice(0, 64),
    resource_type: entry.resource.type.slice(0, 64),
    resource_id: clip(entry.resource.id, 128),
    before: auditSummary(entry.before),
    after: auditSummary(entry.after),
    client_address: clip(entry.client?.address, 100),
    user_agent: clip(entry.client?.userAgent, 500),
  };
}

/** The entries as the one JSON parameter `auditInsertSql` reads (summaries bounded, secrets redacted). */
export function auditRowsJson(entries: NewAuditEntry[]): string {
  // Postgres text and jsonb cannot hold NUL; a worker's output quoted in a summary must not sink the batch.
  return JSON.stringify(entries.map(auditRow)).replaceAll("\\u0000", "\\uFFFD");
}

/**
 * One INSERT for a batch of entries passed as a JSON array in `param` (e.g. "$4"), in array order.
 * Usable on its own or as a data-modifying CTE of a larger statement.
 */
export function auditInsertSql(param: string): string {
  return `INSERT INTO audit_entries (actor_kind, actor_id, action, resource_type, resource_id, before, after,
            client_address, user_agent)
     SELECT x.actor_kind, x.actor_id, x.action, x.resource_type, x.resource_id, x.before, x.after,
            x.client_address, x.user_agent
       FROM ROWS FROM (jsonb_to_recordset(${param}::jsonb) AS (actor_kind text, actor_id text, action text,
            resource_type text, resource_id text, before jsonb, after jsonb, client_address text, user_agent text))
            WITH ORDINALITY AS x(actor_kind, actor_id, action, resource_type, resource_id, before, after,
            client_address, user_agent, n)
      ORDER BY x.n`;
}

/** A row of `LIST_SQL`. */
interface AuditListRow {
  id: string;
  actor_kind: string;
  actor_id: string;
  action: string;
  resource_type: string;
  resource_id: string | null;
  resource_name: string | null;
  before: unknown;
  after: unknown;
  client_address: string | null;
  user_agent: string | null;
  created_at: Date | string;
}

function toDto(e: AuditListRow): AuditEntryDto {
  return {
    id: e.id,
    actorKind: e.actor_kind,
    actorId: e.actor_id,
    action: e.action,
    resourceType: e.resource_type,
    resourceId: e.resource_id,
    resourceName: e.resource_name,
    before: e.before,
    after: e.after,
    clientAddress: e.client_address,
    userAgent: e.user_agent,
    createdAt: e.created_at instanceof Date ? e.created_at : new Date(e.created_at),
  };
}

// The resource id as a uuid when it is one (the trail also holds ids of other shapes); CASE evaluates the cast only then.
const RESOURCE_UUID =
  "CASE WHEN a.resource_id ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN a.resource_id::uuid END";

/** The resource's name, read in the same statement as the page (one index lookup per row on the resource's key). */
const RESOURCE_NAME_SQL = `CASE a.resource_type
    WHEN 'task' THEN (SELECT t.title FROM tasks t WHERE t.id = ${RESOURCE_UUID})
    WHEN 'worker' THEN (SELECT w.name FROM workers w WHERE w.id = ${RESOURCE_UUID})
    WHEN 'user' THEN (SELECT u.username FROM users u WHERE u.id = ${RESOURCE_UUID})
    WHEN 'api_token' THEN (SELECT k.name FROM api_tokens k WHERE k.id = ${RESOURCE_UUID})
    WHEN 'saved_view' THEN (SELECT v.name FROM saved_views v WHERE v.id = ${RESOURCE_UUID})
  END`;

export type AuditFilter = Omit<z.output<typeof auditListInputSchema>, "limit" | "cursor">;

/** The WHERE clause and its parameters for a filter and an optional cursor (entries older than it). */
function listWhere(filter: AuditFilter, cursor: string | undefined): { sql: string; params: unknown[] } {
  const conds: string[] = [];
  const params: unknown[] = [];
  const add = (cond: (p: string) => string, value: unknown) => {
    params.push(value);
    conds.push(cond(`$${params.length}`));
  };
  if (filter.actorKind) add((p) => `a.actor_kind = ${p}`, filter.actorKind);
  if (filter.actorId) add((p) => `a.actor_id = ${p}`, filter.actorId);
  if (filter.action) add((p) => `a.action = ${p}`, filter.action);
  if (filter.resourceType) add((p) => `a.resource_type = ${p}`, filter.resourceType);
  if (filter.resourceId) add((p) => `a.resource_id = ${p}`, filter.resourceId);
  if (filter.from) add((p) => `a.created_at >= ${p}::timestamptz`, filter.from.toISOString());
  if (filter.to) add((p) => `a.created_at <= ${p}::timestamptz`, filter.to.toISOString());
  if (cursor) add((p) => `a.id < ${p}::bigint`, cursor);
  return { sql: conds.length ? `WHERE ${conds.join(" AND ")}` : "", params };
}

/** The audit trail: written only through `record`, read through `list`. There is no update or delete. */
export class AuditService {
  constructor(private readonly db: Database) {}

  /** Call inside the transaction that makes the change, so the entry and the change commit together. */
  async record(tx: Tx, entry: NewAuditEntry): Promise<void> {
    await this.recordMany(tx, [entry]);
  }

  /** A whole batch in one statement (the hot path records one entry per task per state change). */
  async recordMany(tx: Tx, entries: NewAuditEntry[]): Promise<void> {
    if (entries.length) await tx.$executeRawUnsafe(auditInsertSql("$1"), auditRowsJson(entries));
  }

  async list(
    input: z.output<typeof auditListInputSchema>,
  ): Promise<{ items: AuditEntryDto[]; nextCursor: string | null }> {
    return this.page(input, input.limit, input.cursor);
  }

  /** One page of entries matching `filter`, newest first, older than `cursor`; each with its resource's name. */
  async page(
    filter: AuditFilter,
    limit: number,
    cursor?: string,
  ): Promise<{ items: AuditEntryDto[]; nextCursor: string | null }> {
    const where = listWhere(filter, cursor);
    const rows = await this.db.prisma.$queryRawUnsafe<AuditListRow[]>(
      `SELECT a.id::text AS id, a.actor_kind, a.actor_id, a.action, a.resource_type, a.resource_id,
              ${RESOURCE_NAME_SQL} AS resource_name,
              a.before, a.after, a.client_address, a.user_agent, a.created_at
         FROM audit_entries a
         ${where.sql}
        ORDER BY a.id DESC
        LIMIT ${limit + 1}`,
      ...where.params,
    );
    const items = rows.slice(0, limit).map(toDto);
    return { items, nextCursor: rows.length > limit ? (items[items.length - 1]?.id ?? null) : null };
  }

  /** Every entry matching `filter`, newest first, read `pageSize` at a time (for an export: never all at once). */
  async *entries(filter: AuditFilter, pageSize = 500): AsyncGenerator<AuditEntryDto[]> {
    let cursor: string | undefined;
    do {
      const page = await this.page(filter, pageSize, cursor);
      if (page.items.length) yield page.items;
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
  }
}

import type { z } from "zod";
import type { AuditEntryDto, auditListInputSchema } from "../../shared/audit.js";
import type { Actor } from "../../shared/roles.js";
import type { Database, Tx } from "../db/database.js";
import type { AuditEntry, Prisma } from "../db/generated/client.js";

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

function toDto(e: AuditEntry): AuditEntryDto {
  return {
    id: e.id.toString(),
    actorKind: e.actorKind,
    actorId: e.actorId,
    action: e.action,
    resourceType: e.resourceType,
    resourceId: e.resourceId,
    before: e.before,
    after: e.after,
    clientAddress: e.clientAddress,
    userAgent: e.userAgent,
    createdAt: e.createdAt,
  };
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
    const where: Prisma.AuditEntryWhereInput = {
      ...(input.actorKind ? { actorKind: input.actorKind } : {}),
      ...(input.actorId ? { actorId: input.actorId } : {}),
      ...(input.action ? { action: input.action } : {}),
      ...(input.resourceType ? { resourceType: input.resourceType } : {}),
      ...(input.resourceId ? { resourceId: input.resourceId } : {}),
      ...(input.from || input.to
        ? { createdAt: { ...(input.from ? { gte: input.from } : {}), ...(input.to ? { lte: input.to } : {}) } }
        : {}),
      ...(input.cursor ? { id: { lt: BigInt(input.cursor) } } : {}),
    };
    const rows = await this.db.prisma.auditEntry.findMany({ where, orderBy: { id: "desc" }, take: input.limit + 1 });
    const items = rows.slice(0, input.limit).map(toDto);
    return { items, nextCursor: rows.length > input.limit ? (items[items.length - 1]?.id ?? null) : null };
  }
}

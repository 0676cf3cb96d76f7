import type { z } from "zod";
import type { AuditEntryDto, auditListInputSchema } from "../../shared/audit.js";
import type { Actor } from "../../shared/roles.js";
import type { Database } from "../db/database.js";
import type { AuditEntry, Prisma } from "../db/generated/client.js";

type Tx = Prisma.TransactionClient;

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
    await tx.auditEntry.create({ data: this.row(entry) });
  }

  async recordMany(tx: Tx, entries: NewAuditEntry[]): Promise<void> {
    if (entries.length) await tx.auditEntry.createMany({ data: entries.map((e) => this.row(e)) });
  }

  private row(entry: NewAuditEntry): Prisma.AuditEntryCreateManyInput {
    const before = auditSummary(entry.before);
    const after = auditSummary(entry.after);
    return {
      actorKind: entry.actor.kind,
      actorId: clip(entry.actor.id, 128) ?? "unknown",
      action: entry.action.slice(0, 64),
      resourceType: entry.resource.type.slice(0, 64),
      resourceId: clip(entry.resource.id, 128),
      ...(before === null ? {} : { before }),
      ...(after === null ? {} : { after }),
      clientAddress: clip(entry.client?.address, 100),
      userAgent: clip(entry.client?.userAgent, 500),
    };
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

import { randomUUID } from "node:crypto";
import type { Actor } from "../../shared/roles.js";
import { type TaskFilter, taskFilterSchema } from "../../shared/task-list.js";
import type { AuditService, ClientInfo } from "../audit/service.js";
import type { Database } from "../db/database.js";
import type { Prisma } from "../db/generated/client.js";
import { notFound } from "../errors.js";

/** Saved task-list filters, private to their owner; saving an existing name replaces it. */
export class ViewService {
  constructor(
    private readonly db: Database,
    private readonly audit: AuditService,
  ) {}

  async list(actor: Actor) {
    const rows = await this.db.prisma.savedView.findMany({ where: { owner: actor.id }, orderBy: { name: "asc" } });
    return rows.map((r) => ({
      id: r.id,
      name: r.name,
      // Stored filters are re-parsed so a view saved by an older version still loads.
      filter: taskFilterSchema.safeParse(r.filter).data ?? { sort: "created_desc" as const },
      updatedAt: r.updatedAt,
    }));
  }

  async save(actor: Actor, name: string, filter: TaskFilter, client?: ClientInfo) {
    const json = JSON.parse(JSON.stringify(filter)) as Prisma.InputJsonValue;
    const row = await this.db.prisma.$transaction(async (tx) => {
      const before = await tx.savedView.findUnique({ where: { owner_name: { owner: actor.id, name } } });
      const saved = await tx.savedView.upsert({
        where: { owner_name: { owner: actor.id, name } },
        create: { id: randomUUID(), owner: actor.id, name, filter: json },
        update: { filter: json, updatedAt: new Date() },
      });
      await this.audit.record(tx, {
        actor,
        action: "view.save",
        resource: { type: "saved_view", id: saved.id },
        before: before ? { name: before.name, filter: before.filter } : null,
        after: { name: saved.name, filter: saved.filter },
        ...(client ? { client } : {}),
      });
      return saved;
    });
    return { id: row.id, name: row.name };
  }

  async delete(actor: Actor, id: string, client?: ClientInfo) {
    await this.db.prisma.$transaction(async (tx) => {
      const gone = await tx.savedView.findFirst({ where: { id, owner: actor.id } });
      const { count } = await tx.savedView.deleteMany({ where: { id, owner: actor.id } });
      if (!gone || count === 0) throw notFound("Saved view", id);
      await this.audit.record(tx, {
        actor,
        action: "view.delete",
        resource: { type: "saved_view", id },
        before: { name: gone.name, filter: gone.filter },
        ...(client ? { client } : {}),
      });
    });
    return { id };
  }
}

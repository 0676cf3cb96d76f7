import { randomUUID } from "node:crypto";
import type { Actor } from "../../shared/roles.js";
import { type TaskFilter, taskFilterSchema } from "../../shared/task-list.js";
import type { Database } from "../db/database.js";
import type { Prisma } from "../db/generated/client.js";
import { notFound } from "../errors.js";

/** Saved task-list filters, private to their owner; saving an existing name replaces it. */
export class ViewService {
  constructor(private readonly db: Database) {}

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

  async save(actor: Actor, name: string, filter: TaskFilter) {
    const json = JSON.parse(JSON.stringify(filter)) as Prisma.InputJsonValue;
    const row = await this.db.prisma.savedView.upsert({
      where: { owner_name: { owner: actor.id, name } },
      create: { id: randomUUID(), owner: actor.id, name, filter: json },
      update: { filter: json, updatedAt: new Date() },
    });
    return { id: row.id, name: row.name };
  }

  async delete(actor: Actor, id: string) {
    const { count } = await this.db.prisma.savedView.deleteMany({ where: { id, owner: actor.id } });
    if (count === 0) throw notFound("Saved view", id);
    return { id };
  }
}

import { z } from "zod";
import { safeText } from "./text.js";

export const AUDIT_ACTOR_KINDS = ["user", "token", "system", "worker"] as const;

/**
 * Every action the server writes to the trail (test/audit-trail.test.ts checks the server's sources
 * against it): the console's action filter lists these.
 */
export const AUDIT_ACTIONS = [
  "auth.sign_in",
  "auth.sign_in_failed",
  "auth.sign_out",
  "task.answer",
  "task.approve",
  "task.cancel",
  "task.cancel_done",
  "task.create",
  "task.dispatch",
  "task.fail",
  "task.override",
  "task.reject",
  "task.requeue",
  "task.rerun",
  "task.retry",
  "task.transition",
  "task.verdict",
  "token.create",
  "token.revoke",
  "user.change_password",
  "user.create",
  "user.disable",
  "user.end_sessions",
  "user.reset_password",
  "user.update",
  "view.delete",
  "view.save",
  "webhook.create",
  "webhook.delete",
  "webhook.replay",
  "webhook.rotate_secret",
  "webhook.test",
  "webhook.update",
  "worker.drain",
  "worker.pause",
  "worker.register",
  "worker.remove",
  "worker.reset",
  "worker.resume",
  "worker.seal_token",
  "worker.trip",
  "worker.update",
] as const;

/** How an entry made by the agency itself (dispatcher, council, recovery, …) names its actor. */
export const SYSTEM_ACTOR_LABEL = "Agency (system)";

/** Filters and paging for `audit.list`; newest first. */
export const auditListInputSchema = z
  .object({
    actorKind: z.enum(AUDIT_ACTOR_KINDS).optional(),
    actorId: safeText(z.string().min(1).max(128)).optional(),
    action: safeText(z.string().min(1).max(64)).optional(),
    resourceType: safeText(z.string().min(1).max(64)).optional(),
    resourceId: safeText(z.string().min(1).max(128)).optional(),
    from: z.coerce.date().optional(),
    to: z.coerce.date().optional(),
    /** The `nextCursor` of the previous page. */
    cursor: z
      .string()
      .regex(/^\d{1,19}$/, "cursor must be the nextCursor of a previous page")
      .optional(),
    limit: z.number().int().min(1).max(200).default(50),
  })
  .refine((v) => !v.from || !v.to || v.from <= v.to, { message: "from must not be after to", path: ["from"] });

export type AuditListInput = z.input<typeof auditListInputSchema>;

export interface AuditEntryDto {
  id: string;
  actorKind: string;
  actorId: string;
  action: string;
  resourceType: string;
  resourceId: string | null;
  /** The resource's name when it still exists: a task's title, a worker's, user's, token's or saved view's name. */
  resourceName: string | null;
  before: unknown;
  after: unknown;
  clientAddress: string | null;
  userAgent: string | null;
  createdAt: Date;
}

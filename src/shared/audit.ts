import { z } from "zod";
import { safeText } from "./text.js";

export const AUDIT_ACTOR_KINDS = ["user", "token", "system", "worker"] as const;

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
  before: unknown;
  after: unknown;
  clientAddress: string | null;
  userAgent: string | null;
  createdAt: Date;
}

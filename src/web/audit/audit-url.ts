import { AUDIT_ACTOR_KINDS, type AuditListInput } from "../../shared/audit.js";

/** The audit page's filters as they live in the address bar: `?actor=&kind=&action=&type=&resource=&from=&to=`. */
export interface AuditUrlFilter {
  actor: string;
  kind: string;
  action: string;
  type: string;
  resource: string;
  /** Local date-times as `<input type="datetime-local">` gives them: YYYY-MM-DDTHH:mm. */
  from: string;
  to: string;
}

const KEYS = ["actor", "kind", "action", "type", "resource", "from", "to"] as const;
const LOCAL_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/;

export function parseAuditUrl(p: URLSearchParams): AuditUrlFilter {
  const get = (k: string, max: number) => (p.get(k) ?? "").trim().slice(0, max);
  const kind = get("kind", 16);
  const from = get("from", 19);
  const to = get("to", 19);
  return {
    actor: get("actor", 128),
    kind: (AUDIT_ACTOR_KINDS as readonly string[]).includes(kind) ? kind : "",
    action: get("action", 64),
    type: get("type", 64),
    resource: get("resource", 128),
    from: LOCAL_DATE_TIME.test(from) ? from : "",
    to: LOCAL_DATE_TIME.test(to) ? to : "",
  };
}

export function toAuditSearch(f: AuditUrlFilter): URLSearchParams {
  const p = new URLSearchParams();
  for (const k of KEYS) if (f[k].trim()) p.set(k, f[k].trim());
  return p;
}

/** The `audit.list` input for these filters; `to` includes its whole minute. */
export function toAuditInput(f: AuditUrlFilter): Omit<AuditListInput, "cursor"> {
  return {
    ...(f.actor ? { actorId: f.actor } : {}),
    ...(f.kind ? { actorKind: f.kind as (typeof AUDIT_ACTOR_KINDS)[number] } : {}),
    ...(f.action ? { action: f.action } : {}),
    ...(f.type ? { resourceType: f.type } : {}),
    ...(f.resource ? { resourceId: f.resource } : {}),
    ...(f.from ? { from: new Date(f.from) } : {}),
    ...(f.to ? { to: new Date(new Date(f.to).getTime() + 59_999) } : {}),
    limit: 50,
  };
}

export const EMPTY_AUDIT_FILTER: AuditUrlFilter = {
  actor: "",
  kind: "",
  action: "",
  type: "",
  resource: "",
  from: "",
  to: "",
};

/** `GET /audit/export.csv` for these filters: the same entries as the page, every one of them, as CSV. */
export function auditExportHref(f: AuditUrlFilter): string {
  const input = toAuditInput(f);
  const p = new URLSearchParams();
  for (const key of ["actorKind", "actorId", "action", "resourceType", "resourceId"] as const) {
    const v = input[key];
    if (v) p.set(key, v);
  }
  if (input.from instanceof Date && !Number.isNaN(input.from.getTime())) p.set("from", input.from.toISOString());
  if (input.to instanceof Date && !Number.isNaN(input.to.getTime())) p.set("to", input.to.toISOString());
  const query = p.toString();
  return `/audit/export.csv${query ? `?${query}` : ""}`;
}

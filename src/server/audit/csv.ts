import { type AuditEntryDto, SYSTEM_ACTOR_LABEL } from "../../shared/audit.js";

/** The export's columns, in order; `actor` is the label the console shows ("Agency (system)" for the agency). */
export const AUDIT_CSV_COLUMNS = [
  "id",
  "time_utc",
  "actor_kind",
  "actor_id",
  "actor",
  "action",
  "resource_type",
  "resource_id",
  "resource_name",
  "before",
  "after",
  "client_address",
  "user_agent",
] as const;

// A spreadsheet reads a cell starting with one of these as a formula (CSV injection, OWASP).
const FORMULA_START = /^[=+\-@\t\r]/;

/**
 * One RFC 4180 field: a leading apostrophe when a spreadsheet would take the text for a formula, then
 * quoted (quotes doubled) when it holds a comma, a quote, CR or LF, or when it was defused.
 */
export function csvField(value: string | null | undefined): string {
  if (value === null || value === undefined) return "";
  const text = FORMULA_START.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(text) || text !== value ? `"${text.replaceAll('"', '""')}"` : text;
}

/** A record: fields joined by commas, ended with CRLF. */
export const csvRecord = (fields: readonly (string | null | undefined)[]): string =>
  `${fields.map(csvField).join(",")}\r\n`;

const json = (v: unknown): string | null => (v === null || v === undefined ? null : JSON.stringify(v));

export function auditCsvRow(e: AuditEntryDto): string {
  return csvRecord([
    e.id,
    e.createdAt.toISOString(),
    e.actorKind,
    e.actorId,
    e.actorKind === "system" ? SYSTEM_ACTOR_LABEL : e.actorId,
    e.action,
    e.resourceType,
    e.resourceId,
    e.resourceName,
    json(e.before),
    json(e.after),
    e.clientAddress,
    e.userAgent,
  ]);
}

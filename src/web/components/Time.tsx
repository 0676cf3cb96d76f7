import { formatDateTime, formatShortDateTime } from "../lib/format.js";

/** A point in time, short on screen, in full on hover; "—" when there is none. */
export function Time({ value, short }: { value: Date | null | undefined; short?: boolean }) {
  if (!value) return <span className="muted">—</span>;
  return (
    <time dateTime={value.toISOString()} title={formatDateTime(value)}>
      {short ? formatShortDateTime(value) : formatDateTime(value)}
    </time>
  );
}

import { formatDateTime, formatShortDateTime } from "../lib/format.js";
import { formatToSecond, useTimeZoneChoice } from "../lib/time-zone.js";

/**
 * A point in time, short on screen, in full on hover; "—" when there is none. `seconds`: to the second,
 * in the zone chosen with the Local/UTC toggle (TimeZoneToggle), the other zone on hover.
 */
export function Time({
  value,
  short,
  seconds,
}: {
  value: Date | null | undefined;
  short?: boolean;
  seconds?: boolean;
}) {
  if (!value) return <span className="muted">—</span>;
  if (seconds) return <SecondTime value={value} />;
  return (
    <time dateTime={value.toISOString()} title={formatDateTime(value)}>
      {short ? formatShortDateTime(value) : formatDateTime(value)}
    </time>
  );
}

function SecondTime({ value }: { value: Date }) {
  const zone = useTimeZoneChoice();
  return (
    <time
      dateTime={value.toISOString()}
      title={zone === "utc" ? `${formatToSecond(value, "local")} local` : formatToSecond(value, "utc")}
    >
      {formatToSecond(value, zone)}
    </time>
  );
}

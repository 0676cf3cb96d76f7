import { setTimeZoneChoice, type TimeZoneChoice, useTimeZoneChoice } from "../lib/time-zone.js";

const CHOICES: [TimeZoneChoice, string][] = [
  ["local", "Local"],
  ["utc", "UTC"],
];

/** Shows times to the second in the browser's zone or in UTC; the choice is remembered in this browser. */
export function TimeZoneToggle() {
  const zone = useTimeZoneChoice();
  return (
    <fieldset className="zone-toggle">
      <legend>Times in</legend>
      {CHOICES.map(([value, label]) => (
        <button
          key={value}
          type="button"
          className="btn btn-small"
          aria-pressed={zone === value}
          onClick={() => setTimeZoneChoice(value)}
        >
          {label}
        </button>
      ))}
    </fieldset>
  );
}

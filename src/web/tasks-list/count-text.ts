const numberFormat = new Intl.NumberFormat("en-US");

/** "1 task", "1,234 tasks", or "10,000+ tasks" when the count stopped at its cap (`capped`). */
export function countText(count: number, capped = false): string {
  return `${numberFormat.format(count)}${capped ? "+" : ""} ${count === 1 && !capped ? "task" : "tasks"}`;
}

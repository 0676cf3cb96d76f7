/** A positive integer from the environment, or `fallback` when unset; anything else stops the bench with a clear error. */
export function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`${name} must be a positive integer, got "${raw}".`);
    process.exit(2);
  }
  return n;
}

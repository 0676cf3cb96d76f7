import type { SqlRunner } from "../db/database.js";
import type { Prisma } from "../db/generated/client.js";

/** Between title and description in the generated `search_text` column (migration 20261125160000). */
export const SEARCH_SEPARATOR = "\u001f";

/** Prisma passes `contains` to ILIKE as is: escape its wildcards so they match literally. */
export const escapeLike = (s: string) => s.replace(/[\\%_]/g, "\\$&");

/**
 * The pieces a multi-word term is looked up by in the trigram index, rarest first: the term cut
 * before each whitespace, so each piece keeps its word boundary (" 4242." knows 4242 starts a word).
 *
 * Why: GIN drives a scan from its first condition and, within one condition, probes every trigram's
 * posting list for each candidate of the rarest one. A term mixing a word found in most rows with a
 * rare one ("ticket 4242.") thus reads the common word's posting lists nearly whole (about 30 ms at
 * 1,000,000 tasks). Given as separate conditions with the rare piece first, the common word is
 * probed only where the rare piece matched (about 4 ms). Rarity comes from `sample`, the planner's
 * own sample of search_text (pg_stats): a piece found in more sampled rows is commoner. Without a
 * sample (never analyzed), longer pieces go first.
 */
export function searchPieces(term: string, sample: readonly string[] = []): string[] {
  const pieces = term.split(/(?=\s)/).filter((p) => p.trim() !== "");
  const seen = (p: string) => {
    const needle = p.toLowerCase();
    return sample.reduce((n, v) => (v.includes(needle) ? n + 1 : n), 0);
  };
  return pieces
    .map((p, i) => ({ p, i, seen: seen(p), length: p.trim().length }))
    .sort((a, b) => a.seen - b.seen || b.length - a.length || a.i - b.i)
    .map((x) => x.p);
}

/**
 * The text filter: the term in the title or in the description, case-insensitive, `%` and `_` literal.
 * One word: one ILIKE on search_text (title, chr(31), description; one trigram index). Several
 * words: each piece on search_text, rarest first, to use the index well, and the whole term checked
 * on title and description, so it never matches across the seam. A term holding chr(31) itself is
 * matched on each field only (unindexed; nobody types a unit separator).
 */
export function textWhere(term: string, sample?: readonly string[]): Prisma.TaskWhereInput {
  const whole = escapeLike(term);
  const onFields: Prisma.TaskWhereInput = {
    OR: [
      { title: { contains: whole, mode: "insensitive" } },
      { description: { contains: whole, mode: "insensitive" } },
    ],
  };
  if (term.includes(SEARCH_SEPARATOR)) return onFields;
  const pieces = searchPieces(term, sample);
  if (pieces.length <= 1) return { searchText: { contains: whole, mode: "insensitive" } };
  return {
    AND: [
      ...pieces.map((p): Prisma.TaskWhereInput => ({ searchText: { contains: escapeLike(p), mode: "insensitive" } })),
      onFields,
    ],
  };
}

/** Fewest hex digits of a task id the search box looks an id up by (as `git` takes a short hash). */
export const ID_PREFIX_MIN = 8;

/**
 * A task id, or its first 8 or more hex digits (dashes anywhere or nowhere), as the range of ids it
 * covers: the primary key's index answers it. Anything else: undefined.
 */
export function idPrefixWhere(term: string): Prisma.TaskWhereInput | undefined {
  if (!/^[0-9a-f-]+$/i.test(term)) return undefined;
  const hex = term.replace(/-/g, "").toLowerCase();
  if (hex.length < ID_PREFIX_MIN || hex.length > 32) return undefined;
  const uuid = (h: string) => `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  if (hex.length === 32) return { id: uuid(hex) };
  return { id: { gte: uuid(hex.padEnd(32, "0")), lte: uuid(hex.padEnd(32, "f")) } };
}

/** How long a sample of search_text from pg_stats is used before it is read again. */
const SAMPLE_TTL_MS = 10 * 60_000;

/**
 * The planner's sample of search_text values (histogram and most common values of the last ANALYZE),
 * lower-cased, read at most every ten minutes. Empty until the table has been analyzed.
 */
export class SearchSample {
  private values: string[] = [];
  private readAt = Number.NEGATIVE_INFINITY;
  private reading?: Promise<string[]>;

  constructor(private readonly db: SqlRunner) {}

  async get(): Promise<string[]> {
    if (Date.now() - this.readAt < SAMPLE_TTL_MS) return this.values;
    this.reading ??= this.read().finally(() => {
      this.reading = undefined;
    });
    return this.reading;
  }

  private async read(): Promise<string[]> {
    // Only the order of conditions depends on it: if it cannot be read, search goes on without it.
    const rows = await this.db
      .query<{ v: string[] | null }>(
        `SELECT array_cat(COALESCE(histogram_bounds::text::text[], '{}'), COALESCE(most_common_vals::text::text[], '{}')) AS v
         FROM pg_stats WHERE schemaname = current_schema() AND tablename = 'tasks' AND attname = 'search_text'`,
      )
      .catch(() => [{ v: this.values }]);
    this.values = (rows[0]?.v ?? []).map((v) => v.toLowerCase());
    this.readAt = Date.now();
    return this.values;
  }
}

import {
  type AttemptUsage,
  MAX_USAGE_GROUPS,
  type TaskUsage,
  type UsageGroup,
  type UsageGroupRow,
  type UsageRollup,
  type UsageRollupInput,
  type UsageSums,
  usageRollupInputSchema,
} from "../../shared/usage.js";
import type { Database } from "../db/database.js";

/** The attempt columns usage is read from (the cost a Prisma Decimal, or anything that prints as one). */
interface UsageColumns {
  inputTokens: number | null;
  outputTokens: number | null;
  costUsd: { toString(): string } | null;
  model: string | null;
}

/** An attempt's usage as reported; null when it reported none. */
export function attemptUsage(a: UsageColumns): AttemptUsage | null {
  if (a.inputTokens === null && a.outputTokens === null && a.costUsd === null && a.model === null) return null;
  return {
    inputTokens: a.inputTokens,
    outputTokens: a.outputTokens,
    costUsd: a.costUsd === null ? null : Number(a.costUsd.toString()),
    model: a.model,
  };
}

/** Millionths of a dollar: the column's own precision, so a sum of costs is exact. */
const toMicros = (usd: number) => Math.round(usd * 1e6);

/** A task's total over its attempts (a handful of rows already read: summed here, exactly, in millionths). */
export function taskUsage(attempts: { usage: AttemptUsage | null }[]): TaskUsage {
  const out: TaskUsage = { attempts: 0, inputTokens: 0, outputTokens: 0, costUsd: null, models: [] };
  let micros: number | null = null;
  for (const { usage: u } of attempts) {
    if (!u || (u.inputTokens === null && u.outputTokens === null && u.costUsd === null)) continue;
    out.attempts++;
    out.inputTokens += u.inputTokens ?? 0;
    out.outputTokens += u.outputTokens ?? 0;
    if (u.costUsd !== null) micros = (micros ?? 0) + toMicros(u.costUsd);
    if (u.model && !out.models.includes(u.model)) out.models.push(u.model);
  }
  out.costUsd = micros === null ? null : micros / 1e6;
  return out;
}

/**
 * Attempts that ended and reported usage: the predicate of the partial index attempts_usage_finished_at_idx
 * (migration 20261215300000), written the same way so the planner can use it.
 */
const REPORTED = `a.finished_at IS NOT NULL
  AND (a.input_tokens IS NOT NULL OR a.output_tokens IS NOT NULL OR a.cost_usd IS NOT NULL)`;

/** How each grouping keys and labels its rows. Worker names are read now: a renamed worker shows its new name. */
const GROUPING: Record<UsageGroup, { key: string; label: string; order: string }> = {
  worker: {
    key: "a.worker_id::text",
    label: "coalesce(max(w.name), '(removed worker)')",
    order: "sum(a.cost_usd) DESC NULLS LAST, sum(coalesce(a.input_tokens, 0) + coalesce(a.output_tokens, 0)) DESC, 1",
  },
  day: {
    key: "to_char(a.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    label: "to_char(a.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    order: "1",
  },
  model: {
    key: "a.model",
    label: "coalesce(a.model, '(not reported)')",
    order: "sum(a.cost_usd) DESC NULLS LAST, sum(coalesce(a.input_tokens, 0) + coalesce(a.output_tokens, 0)) DESC, 1",
  },
};

interface SumRow {
  attempts: number;
  input_tokens: string;
  output_tokens: string;
  cost_usd: string | null;
}

const SUMS = `count(*)::int AS attempts,
  coalesce(sum(a.input_tokens), 0)::text AS input_tokens,
  coalesce(sum(a.output_tokens), 0)::text AS output_tokens,
  sum(a.cost_usd)::text AS cost_usd`;

const toSums = (r: SumRow | undefined): UsageSums => ({
  attempts: r?.attempts ?? 0,
  inputTokens: Number(r?.input_tokens ?? 0),
  outputTokens: Number(r?.output_tokens ?? 0),
  costUsd: r?.cost_usd == null ? null : Number(r.cost_usd),
});

/**
 * Usage of the attempts that ended in [from, to), summed by worker, by UTC day or by model: one GROUP BY
 * (plus one for the total) over the partial index, on PGlite and a Postgres server alike.
 */
export async function usageRollup(db: Database, raw: UsageRollupInput): Promise<UsageRollup> {
  const input = usageRollupInputSchema.parse(raw);
  const g = GROUPING[input.groupBy];
  const join = input.groupBy === "worker" ? "LEFT JOIN workers w ON w.id = a.worker_id" : "";
  const where = `${REPORTED} AND a.finished_at >= $1 AND a.finished_at < $2`;
  const params = [input.from.toISOString(), input.to.toISOString()];
  const [rows, total] = await Promise.all([
    db.query<SumRow & { key: string | null; label: string }>(
      `SELECT ${g.key} AS key, ${g.label} AS label, ${SUMS}
         FROM attempts a ${join}
        WHERE ${where}
        GROUP BY 1${input.groupBy === "worker" ? "" : ", 2"}
        ORDER BY ${g.order}
        LIMIT ${MAX_USAGE_GROUPS + 1}`,
      params,
    ),
    db.query<SumRow>(`SELECT ${SUMS} FROM attempts a WHERE ${where}`, params),
  ]);
  const groups: UsageGroupRow[] = rows
    .slice(0, MAX_USAGE_GROUPS)
    .map((r) => ({ key: r.key, label: r.label, ...toSums(r) }));
  return {
    from: input.from,
    to: input.to,
    groupBy: input.groupBy,
    total: toSums(total[0]),
    groups,
    truncated: rows.length > MAX_USAGE_GROUPS,
  };
}

/** Distinct models given their own `model` label in /metrics; the rest are summed under "other". */
export const PROM_MAX_MODELS = 20;
export const PROM_REMOVED_WORKER = "(removed)";
export const PROM_UNREPORTED_MODEL = "unreported";
export const PROM_OTHER_MODEL = "other";

export interface UsageCounterRow {
  worker: string;
  model: string;
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
}

/**
 * All-time usage by worker and model, for the /metrics counters: summed by the database at each scrape, so
 * the counters are right from the first scrape after a restart, and the same in every process. The models
 * with the most tokens keep their name (at most PROM_MAX_MODELS); the others are summed as "other", which
 * bounds the series however many model names workers send.
 */
export async function usageCounters(db: Database): Promise<UsageCounterRow[]> {
  const rows = await db.query<{ worker: string; model: string | null } & Omit<SumRow, "attempts">>(
    `SELECT coalesce(w.name, '${PROM_REMOVED_WORKER}') AS worker, a.model,
            coalesce(sum(a.input_tokens), 0)::text AS input_tokens,
            coalesce(sum(a.output_tokens), 0)::text AS output_tokens,
            coalesce(sum(a.cost_usd), 0)::text AS cost_usd
       FROM attempts a LEFT JOIN workers w ON w.id = a.worker_id
      WHERE ${REPORTED}
      GROUP BY 1, 2`,
  );
  const tokensByModel = new Map<string, number>();
  for (const r of rows) {
    if (r.model === null) continue;
    tokensByModel.set(r.model, (tokensByModel.get(r.model) ?? 0) + Number(r.input_tokens) + Number(r.output_tokens));
  }
  const named = new Set(
    [...tokensByModel]
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .slice(0, PROM_MAX_MODELS)
      .map(([m]) => m),
  );
  const out = new Map<string, UsageCounterRow & { micros: number }>();
  for (const r of rows) {
    const model = r.model === null ? PROM_UNREPORTED_MODEL : named.has(r.model) ? r.model : PROM_OTHER_MODEL;
    const key = `${r.worker}\u0000${model}`;
    const row = out.get(key) ?? { worker: r.worker, model, inputTokens: 0, outputTokens: 0, costUsd: 0, micros: 0 };
    row.inputTokens += Number(r.input_tokens);
    row.outputTokens += Number(r.output_tokens);
    row.micros += toMicros(Number(r.cost_usd));
    out.set(key, row);
  }
  return [...out.values()].map(({ micros, ...r }) => ({ ...r, costUsd: micros / 1e6 }));
}

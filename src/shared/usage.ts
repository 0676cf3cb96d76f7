import { z } from "zod";

const USD = new Intl.NumberFormat("en-US", {
  style: "currency",
  currency: "USD",
  minimumFractionDigits: 2,
  maximumFractionDigits: 6,
});
/** US dollars with cents, and up to the millionth when the figure has them: $0.01, $0.012345, $1,234.50. */
export const formatUsd = (n: number): string => USD.format(n);

const COUNT = new Intl.NumberFormat("en-US");
/** Tokens with thousands separators: 12,345. */
export const formatTokens = (n: number): string => COUNT.format(n);

/** What one attempt's worker reported (`usage` in its result); null where it did not say. */
export interface AttemptUsage {
  inputTokens: number | null;
  outputTokens: number | null;
  /** US dollars, to the millionth. */
  costUsd: number | null;
  model: string | null;
}

/** A task's usage: the sum over its attempts that reported any. */
export interface TaskUsage {
  /** Attempts that reported usage (tokens or cost). */
  attempts: number;
  inputTokens: number;
  outputTokens: number;
  /** null when no attempt reported a cost. */
  costUsd: number | null;
  /** The models named, in attempt order, each once. */
  models: string[];
}

export const USAGE_GROUPS = ["worker", "day", "model"] as const;
export type UsageGroup = (typeof USAGE_GROUPS)[number];

/** The longest range one `metrics.usage` call may cover. */
export const MAX_USAGE_RANGE_DAYS = 366;
/** Groups returned at most (by cost, then tokens); `truncated` says when there were more. */
export const MAX_USAGE_GROUPS = 500;

export const usageRollupInputSchema = z
  .object({
    from: z.coerce.date({ error: "from must be a date" }),
    to: z.coerce.date({ error: "to must be a date" }),
    groupBy: z.enum(USAGE_GROUPS, { error: `groupBy must be one of ${USAGE_GROUPS.join(", ")}` }),
  })
  .refine((i) => i.from < i.to, "from must be before to")
  .refine(
    (i) => i.to.getTime() - i.from.getTime() <= MAX_USAGE_RANGE_DAYS * 86_400_000,
    `The range may cover at most ${MAX_USAGE_RANGE_DAYS} days`,
  );
export type UsageRollupInput = z.input<typeof usageRollupInputSchema>;

/** Sums over the attempts that ended in the range and reported usage. */
export interface UsageSums {
  attempts: number;
  inputTokens: number;
  outputTokens: number;
  /** null when none of them reported a cost. */
  costUsd: number | null;
}

export interface UsageGroupRow extends UsageSums {
  /**
   * worker: the worker's id (null: the worker was removed since); day: the UTC date, YYYY-MM-DD;
   * model: the model's name (null: not reported).
   */
  key: string | null;
  /** What the console shows: the worker's name, the date, the model. */
  label: string;
}

export interface UsageRollup {
  from: Date;
  to: Date;
  groupBy: UsageGroup;
  total: UsageSums;
  groups: UsageGroupRow[];
  truncated: boolean;
}

// The task spec's vocabulary, apart from its schema: the task list imports these without the schema's pattern
// compiler (re2js), which only the submit form needs.

export const PRIORITIES = ["low", "medium", "high", "critical"] as const;
export const RISK_TIERS = [1, 2, 3] as const;
export const MODES = ["feature", "fix", "refactor", "chore"] as const;

export type Priority = (typeof PRIORITIES)[number];
export type RiskTier = (typeof RISK_TIERS)[number];
export type Mode = (typeof MODES)[number];

/** The task list's orders (its filter schema is in task-list.ts, which the console's first page does without). */
export const TASK_SORTS = [
  "created_desc",
  "created_asc",
  "priority_desc",
  "priority_asc",
  "updated_desc",
  "updated_asc",
] as const;
export type TaskSort = (typeof TASK_SORTS)[number];

/** low = 0 … critical = 3: stored beside the task so "sort by priority" is an index scan. */
export const priorityRank = (p: Priority): number => PRIORITIES.indexOf(p);

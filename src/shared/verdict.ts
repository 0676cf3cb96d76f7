import { z } from "zod";
import type { TaskState } from "./task-state.js";
import { findingSchema } from "./worker-protocol.js";

/** The council's decision on one completed attempt. */
export const VERDICTS = ["accept", "changes_requested", "reject"] as const;
export const verdictSchema = z.enum(VERDICTS);
export type Verdict = z.infer<typeof verdictSchema>;

/** The task state each verdict leaves a task in. */
export const VERDICT_STATE = {
  accept: "accepted",
  changes_requested: "changes_requested",
  reject: "rejected",
} as const satisfies Record<Verdict, TaskState>;
export const VERDICT_STATES: readonly TaskState[] = Object.values(VERDICT_STATE);

/** What one judge found. `hardFail` means the attempt cannot be accepted whatever the other judges say. */
export const judgeReportSchema = z.object({
  judge: z.string().max(64),
  passed: z.boolean(),
  hardFail: z.boolean(),
  findings: z.array(findingSchema).max(10_000),
  rationale: z.string().max(10_000),
});
export type JudgeReport = z.infer<typeof judgeReportSchema>;

export const CRITERION_STATUSES = ["passed", "failed", "not_checked"] as const;
export type CriterionStatus = (typeof CRITERION_STATUSES)[number];

/** One acceptance criterion of the spec, by its index there, and how its automated check went. */
export const criterionOutcomeSchema = z.object({
  index: z.number().int().min(0),
  text: z.string().max(1_000),
  status: z.enum(CRITERION_STATUSES),
  detail: z.string().max(20_000).optional(),
});
export type CriterionOutcome = z.infer<typeof criterionOutcomeSchema>;

export const judgementSchema = z.object({
  verdict: verdictSchema,
  rationale: z.string().max(10_000),
  judges: z.array(judgeReportSchema).max(20),
  criteria: z.array(criterionOutcomeSchema).max(100),
});
export type Judgement = z.infer<typeof judgementSchema>;

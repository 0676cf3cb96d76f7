import { z } from "zod";
import { TASK_STATES } from "./task-state.js";
import { MODES, PRIORITIES, TASK_SORTS } from "./task-vocabulary.js";
import { safeText } from "./text.js";

export { TASK_SORTS, type TaskSort } from "./task-vocabulary.js";

/** A task-list filter: the API's input, the console's URL and a saved view's content are all this shape. */
export const taskFilterSchema = z
  .object({
    states: z.array(z.enum(TASK_STATES)).max(TASK_STATES.length).optional(),
    priorities: z.array(z.enum(PRIORITIES)).max(PRIORITIES.length).optional(),
    riskTiers: z
      .array(z.union([z.literal(1), z.literal(2), z.literal(3)]))
      .max(3)
      .optional(),
    modes: z.array(z.enum(MODES)).max(MODES.length).optional(),
    text: safeText(z.string().trim().max(200, "Search text must be at most 200 characters")).optional(),
    createdFrom: z.coerce.date({ error: "Created from must be a date" }).optional(),
    createdTo: z.coerce.date({ error: "Created to must be a date" }).optional(),
    sort: z.enum(TASK_SORTS).default("created_desc"),
  })
  .refine((f) => !f.createdFrom || !f.createdTo || f.createdFrom <= f.createdTo, {
    message: "Created from must not be after created to",
    path: ["createdFrom"],
  });
export type TaskFilter = z.input<typeof taskFilterSchema>;
export type ParsedTaskFilter = z.output<typeof taskFilterSchema>;

export const taskListInputSchema = z.object({
  filter: taskFilterSchema.default({ sort: "created_desc" }),
  limit: z.number().int().min(1).max(200).default(50),
  /** Opaque cursor from the previous page's `nextCursor`. */
  cursor: safeText(z.string().max(200)).nullish(),
});
export type TaskListInput = z.input<typeof taskListInputSchema>;

export const savedViewInputSchema = z.object({
  name: safeText(z.string().trim().min(1, "View name is required").max(80, "View name must be at most 80 characters")),
  filter: taskFilterSchema,
});

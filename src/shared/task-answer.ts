import { z } from "zod";
import { safeText } from "./text.js";

/** Longest answer an operator may give an agent's question (A2A input-required / auth-required). */
export const MAX_ANSWER_LENGTH = 10_000;

/** `tasks.answer`, the chat's `/answer <id> <text>` and the task page's answer box: one schema. */
export const taskAnswerInputSchema = z.object({
  id: z.uuid({ error: "Task id must be a UUID" }),
  text: safeText(
    z
      .string({ error: "Give the answer's text" })
      .trim()
      .min(1, "The answer must not be empty")
      .max(MAX_ANSWER_LENGTH, `The answer must be at most ${MAX_ANSWER_LENGTH} characters`),
  ),
});
export type TaskAnswerInput = z.infer<typeof taskAnswerInputSchema>;

import { type FormEvent, useState } from "react";
import { MAX_ANSWER_LENGTH, taskAnswerInputSchema } from "../../shared/task-answer.js";
import { ErrorMessage } from "../components/ErrorMessage.js";
import { Time } from "../components/Time.js";
import { useHasRole } from "../components/useMe.js";
import { type RouterOutputs, trpc } from "../trpc.js";

type TaskDetail = RouterOutputs["tasks"]["get"];

const KIND_LABELS = {
  "input-required": "The agent needs input",
  "auth-required": "The agent needs authentication",
} as const;

/**
 * An A2A agent's open question on the running attempt (input-required / auth-required), with a box for an
 * operator's answer (tasks.answer). The attempt waits for it, without its idle timeout; cancel still works.
 */
export function AgentQuestion({ task }: { task: TaskDetail }) {
  const attempt = task.attempts.at(-1);
  const request = task.state === "running" ? attempt?.inputRequest : null;
  const canAnswer = useHasRole("operator");
  const utils = trpc.useUtils();
  const answer = trpc.tasks.answer.useMutation({
    onSuccess: () => utils.tasks.get.invalidate({ id: task.id }),
  });
  const [text, setText] = useState("");
  const [error, setError] = useState<string | null>(null);
  if (!attempt || !request) return null;

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const parsed = taskAnswerInputSchema.safeParse({ id: task.id, text });
    if (!parsed.success) {
      setError(parsed.error.issues[0]?.message ?? "Invalid answer");
      return;
    }
    setError(null);
    answer.mutate(parsed.data, { onSuccess: () => setText("") });
  };

  return (
    <section
      className="notice notice-warn agent-question"
      aria-label="The agent's question"
      data-testid="agent-question"
    >
      <p>
        <strong>{KIND_LABELS[request.kind]}</strong> (attempt {attempt.number}, asked{" "}
        <Time value={new Date(request.askedAt)} short />
        ):
      </p>
      <blockquote className="agent-question-text">{request.question}</blockquote>
      {attempt.inputAnswered ? (
        <p className="muted" role="status">
          Answered; the answer is on its way to the agent.
        </p>
      ) : canAnswer ? (
        <form onSubmit={submit} noValidate aria-label="Answer the agent">
          <label htmlFor="agent-answer">Your answer</label>
          <textarea
            id="agent-answer"
            rows={3}
            maxLength={MAX_ANSWER_LENGTH}
            value={text}
            onChange={(e) => setText(e.target.value)}
            aria-invalid={error ? true : undefined}
            aria-describedby="agent-answer-error"
          />
          <p id="agent-answer-error" className="field-error">
            {error ?? ""}
          </p>
          <button type="submit" className="btn btn-primary" disabled={answer.isPending}>
            {answer.isPending ? "Sending…" : "Send answer"}
          </button>
        </form>
      ) : (
        <p className="muted">An operator can answer it here, or with /answer in chat.</p>
      )}
      {answer.error ? <ErrorMessage title="The answer was not taken:" error={answer.error} /> : null}
    </section>
  );
}

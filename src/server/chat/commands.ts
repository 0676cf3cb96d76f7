import { MAX_APPROVAL_NOTE_LENGTH } from "../../shared/approvals.js";
import { taskAnswerInputSchema } from "../../shared/task-answer.js";
import { LIMITS, missingScript, SCRIPT_CAPABILITY } from "../../shared/task-spec.js";
import { TASK_STATES, type TaskState } from "../../shared/task-state.js";

export type Command =
  | { name: "help" }
  | { name: "status" }
  | { name: "tasks"; state: TaskState | null }
  | { name: "task"; title: string; script: string }
  | { name: "cancel"; ref: string; reason: string | null }
  | { name: "retry"; ref: string }
  | { name: "answer"; ref: string; text: string }
  | { name: "approve"; ref: string; note: string | null }
  | { name: "reject"; ref: string; note: string };

export type Parsed = { kind: "command"; command: Command } | { kind: "invalid"; error: string } | { kind: "text" };

export const COMMAND_HELP: readonly [string, string][] = [
  ["/status", "queue depth, running tasks, throughput, and every worker with its breaker"],
  ["/tasks [state]", `the latest tasks, optionally in one state (${TASK_STATES.join(", ")})`],
  [
    "/task <title>, then the script on the next lines",
    "submit a script task for the reference worker with the default settings (Shift+Enter starts a line)",
  ],
  ["/cancel <task id> [reason]", "cancel a task (the id, or its first 8 or more characters)"],
  ["/retry <task id>", "queue a finished task again as a new attempt"],
  ["/answer <task id> <text>", "answer the question an A2A agent asked on a task (it waits for input)"],
  ["/approve <task id> [note]", "approve a task awaiting approval: the council's accepted result becomes final"],
  ["/reject <task id> <note>", "reject a task awaiting approval, saying why"],
  ["/help", "this list"],
];

export const helpText = (): string =>
  ["Commands:", ...COMMAND_HELP.map(([usage, what]) => `  ${usage} — ${what}`)].join("\n");

const TASK_USAGE =
  "Usage: /task <title>, then the script on the next lines (Shift+Enter), e.g. /task Say hello ⏎ echo hello";

/** A full task UUID, or a prefix of at least 8 of its hex digits. */
const TASK_REF = /^[0-9a-f]{8}(?:[0-9a-f-]{0,28})$/i;

/** Reads a chat message: a command (leading "/"), a malformed command with the reason, or free text. */
export function parseMessage(content: string): Parsed {
  const text = content.trim();
  if (!text.startsWith("/")) return { kind: "text" };
  const [head = "", ...rest] = text.split(/\s+/);
  const name = head.slice(1).toLowerCase();
  const args = rest;
  const argText = text.slice(head.length).trim();
  const invalid = (error: string): Parsed => ({ kind: "invalid", error });
  switch (name) {
    case "help":
      return { kind: "command", command: { name: "help" } };
    case "status":
      if (args.length) return invalid("/status takes no arguments.");
      return { kind: "command", command: { name: "status" } };
    case "tasks": {
      if (args.length > 1) return invalid("Usage: /tasks [state]");
      const state = args[0]?.toLowerCase() ?? null;
      if (state !== null && !TASK_STATES.includes(state as TaskState)) {
        return invalid(`Unknown state "${args[0]}"; use one of ${TASK_STATES.join(", ")}.`);
      }
      return { kind: "command", command: { name: "tasks", state: state as TaskState | null } };
    }
    case "task": {
      // The first line is the title; the lines after it are the script.
      const [titleLine = "", ...scriptLines] = argText.split("\n");
      const title = titleLine.trim();
      const script = scriptLines.join("\n").trim();
      if (!title) return invalid(TASK_USAGE);
      if (title.length > LIMITS.title) return invalid(`A task title may be at most ${LIMITS.title} characters.`);
      const noScript = missingScript({ capability: SCRIPT_CAPABILITY, input: { script } });
      if (noScript) return invalid(`${noScript}. ${TASK_USAGE}`);
      return { kind: "command", command: { name: "task", title, script } };
    }
    case "cancel": {
      const ref = args[0];
      if (!ref) return invalid("Usage: /cancel <task id> [reason]");
      if (!TASK_REF.test(ref)) return invalid(`"${ref}" is not a task id (a UUID or its first 8+ characters).`);
      const reason = argText.slice(ref.length).trim();
      if (reason.length > 500) return invalid("A cancel reason may be at most 500 characters.");
      return { kind: "command", command: { name: "cancel", ref: ref.toLowerCase(), reason: reason || null } };
    }
    case "retry": {
      const ref = args[0];
      if (!ref || args.length > 1) return invalid("Usage: /retry <task id>");
      if (!TASK_REF.test(ref)) return invalid(`"${ref}" is not a task id (a UUID or its first 8+ characters).`);
      return { kind: "command", command: { name: "retry", ref: ref.toLowerCase() } };
    }
    case "answer": {
      const ref = args[0];
      const usage = "Usage: /answer <task id> <text> (the text may run over several lines)";
      if (!ref) return invalid(usage);
      if (!TASK_REF.test(ref)) return invalid(`"${ref}" is not a task id (a UUID or its first 8+ characters).`);
      const answer = taskAnswerInputSchema.shape.text.safeParse(argText.slice(ref.length));
      if (!answer.success) return invalid(`${answer.error.issues[0]?.message ?? "Invalid answer"}. ${usage}`);
      return { kind: "command", command: { name: "answer", ref: ref.toLowerCase(), text: answer.data } };
    }
    case "approve":
    case "reject": {
      const ref = args[0];
      const usage = name === "approve" ? "Usage: /approve <task id> [note]" : "Usage: /reject <task id> <note>";
      if (!ref) return invalid(usage);
      if (!TASK_REF.test(ref)) return invalid(`"${ref}" is not a task id (a UUID or its first 8+ characters).`);
      const note = argText.slice(ref.length).trim();
      if (note.length > MAX_APPROVAL_NOTE_LENGTH) {
        return invalid(`A note may be at most ${MAX_APPROVAL_NOTE_LENGTH} characters.`);
      }
      if (name === "approve") return { kind: "command", command: { name, ref: ref.toLowerCase(), note: note || null } };
      if (!note) return invalid(`Give a note: say why the attempt is rejected. ${usage}`);
      return { kind: "command", command: { name, ref: ref.toLowerCase(), note } };
    }
    default:
      return invalid(`Unknown command /${name}.`);
  }
}

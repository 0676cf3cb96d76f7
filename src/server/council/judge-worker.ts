import { parentPort } from "node:worker_threads";
import type { Judgement } from "../../shared/verdict.js";
import { type AttemptToJudge, judgeInThread } from "./judge.js";

/** One judging job, as the pool posts it to a thread. */
export interface JudgeRequest {
  id: number;
  attempt: AttemptToJudge;
}

/** What a thread posts back: that it has loaded, or a job's outcome. */
export type JudgeReply =
  | { kind: "ready" }
  | { kind: "judged"; id: number; judgement: Judgement }
  | { kind: "failed"; id: number; message: string };

// The entry of a judging thread (see JudgePool); imported for its types on the main thread, where it does nothing.
const port = parentPort;
if (port) {
  port.on("message", ({ id, attempt }: JudgeRequest) => {
    let reply: JudgeReply;
    try {
      reply = { kind: "judged", id, judgement: judgeInThread(attempt) };
    } catch (err) {
      reply = { kind: "failed", id, message: (err as Error).message };
    }
    port.postMessage(reply);
  });
  port.postMessage({ kind: "ready" } satisfies JudgeReply);
}

import { parentPort } from "node:worker_threads";
import type { Judgement } from "../../shared/verdict.js";
import { type AttemptToJudge, judgeInThread } from "./judge.js";

/**
 * How the pool hands an attempt to a thread. Posting a message copies it on the sending thread, so a
 * 20 MB artifact set posted at once would hold the event loop for as long as the copy takes: the
 * attempt goes without its artifacts' text (`begin`), the text follows in bounded pieces with the event
 * loop free in between, and `judge` starts the work (and the pool's clock).
 */
export type JudgeRequest =
  | { kind: "begin"; id: number; attempt: AttemptToJudge }
  | { kind: "piece"; id: number; artifact: number; field: "content" | "diff"; text: string }
  | { kind: "judge"; id: number };

/** What a thread posts back: that it has loaded, or a job's outcome. */
export type JudgeReply =
  | { kind: "ready" }
  | { kind: "judged"; id: number; judgement: Judgement }
  | { kind: "failed"; id: number; message: string };

// The entry of a judging thread (see JudgePool); imported for its types on the main thread, where it does nothing.
const port = parentPort;
if (port) {
  let current: { id: number; attempt: AttemptToJudge; pieces: Map<string, string[]> } | null = null;
  port.on("message", (msg: JudgeRequest) => {
    if (msg.kind === "begin") {
      current = { id: msg.id, attempt: msg.attempt, pieces: new Map() };
      return;
    }
    if (!current || current.id !== msg.id) return;
    if (msg.kind === "piece") {
      const key = `${msg.artifact}:${msg.field}`;
      const list = current.pieces.get(key);
      if (list) list.push(msg.text);
      else current.pieces.set(key, [msg.text]);
      return;
    }
    const { id, attempt, pieces } = current;
    current = null;
    for (const [key, list] of pieces) {
      const [index, field] = key.split(":") as [string, "content" | "diff"];
      const artifact = attempt.result.artifacts[Number(index)];
      if (artifact) artifact[field] = list.join("");
    }
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

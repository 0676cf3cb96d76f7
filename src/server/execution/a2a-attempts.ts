import { EventEmitter } from "node:events";
import type { Caller } from "../audit/trail.js";
import type { Database } from "../db/database.js";
import type { UnitOfWorkRunner } from "../db/unit-of-work.js";
import { DomainError, notFound } from "../errors.js";
import type { EventWriter } from "./event-writer.js";

/** The agent's own task for an attempt: what a re-attach resubscribes to, a cancel names, an answer continues. */
export interface RemoteTask {
  taskId: string;
  contextId: string;
}

export type InputKind = "input-required" | "auth-required";

export interface InputRequest {
  kind: InputKind;
  question: string;
  askedAt: string;
}

/** How often a waiting attempt looks for an answer given in another process (one in this process wakes it at once). */
const ANSWER_POLL_MS = 500;
export const MAX_ANSWER_CHARS = 10_000;

/**
 * What the agency keeps of an attempt on an A2A worker, on the attempt's row (so a restarted or another
 * process finds it): the agent's task and context ids, and the agent's open question with an operator's
 * answer. Attempts are named by task and number, as the worker protocol names them.
 */
export class A2AAttempts {
  private readonly answered = new EventEmitter();

  constructor(
    private readonly db: Database,
    private readonly events: EventWriter,
    private readonly units: UnitOfWorkRunner,
  ) {
    this.answered.setMaxListeners(0);
  }

  async remoteOf(taskId: string, attempt: number): Promise<RemoteTask | null> {
    const [row] = await this.db.query<{ remote_task_id: string | null; remote_context_id: string | null }>(
      `SELECT remote_task_id, remote_context_id FROM attempts WHERE task_id = $1::uuid AND number = $2`,
      [taskId, attempt],
    );
    return row?.remote_task_id ? { taskId: row.remote_task_id, contextId: row.remote_context_id ?? "" } : null;
  }

  /** Records the agent's task on a running attempt (a no-op for a call that is not a task's, e.g. chat). */
  async record(taskId: string, attempt: number, remote: RemoteTask): Promise<void> {
    await this.db.query(
      `UPDATE attempts SET remote_task_id = $3, remote_context_id = $4
        WHERE task_id = $1::uuid AND number = $2 AND state = 'running'
          AND remote_task_id IS DISTINCT FROM $3`,
      [taskId, attempt, remote.taskId.slice(0, 200), remote.contextId.slice(0, 200)],
    );
  }

  /** Forgets the agent's task of an attempt: the agent no longer knows it, the next message starts a new one. */
  async forget(taskId: string, attempt: number): Promise<void> {
    await this.db.query(
      `UPDATE attempts SET remote_task_id = NULL, remote_context_id = NULL WHERE task_id = $1::uuid AND number = $2`,
      [taskId, attempt],
    );
  }

  /**
   * Records the agent's question (once per question) and says so in the task's events. The same question
   * asked again (a re-attach finds the task still waiting) keeps an answer given meanwhile, which then goes out.
   */
  async ask(taskId: string, attempt: number, kind: InputKind, question: string): Promise<void> {
    const request: InputRequest = {
      kind,
      question: question.slice(0, MAX_ANSWER_CHARS),
      askedAt: new Date().toISOString(),
    };
    const rows = await this.db.query<{ id: string }>(
      `UPDATE attempts SET input_request = $3::jsonb, input_answer = NULL
        WHERE task_id = $1::uuid AND number = $2 AND state = 'running'
          AND (input_request IS NULL OR input_request->>'question' IS DISTINCT FROM $4
               OR input_request->>'kind' IS DISTINCT FROM $5)
        RETURNING id`,
      [taskId, attempt, JSON.stringify(request), request.question, kind],
    );
    if (rows.length) {
      this.events.append({
        taskId,
        type: "input_required",
        actor: "system",
        data: { attempt, kind, question: request.question },
      });
    }
  }

  /** The operator's answer to the open question, when there is one. */
  async answerOf(taskId: string, attempt: number): Promise<string | null> {
    const [row] = await this.db.query<{ text: string | null }>(
      `SELECT input_answer->>'text' AS text FROM attempts
        WHERE task_id = $1::uuid AND number = $2 AND input_request IS NOT NULL`,
      [taskId, attempt],
    );
    return row?.text ?? null;
  }

  /** The question is answered and the answer delivered to the agent: the attempt no longer waits. */
  async settle(taskId: string, attempt: number): Promise<void> {
    await this.db.query(
      `UPDATE attempts SET input_request = NULL, input_answer = NULL WHERE task_id = $1::uuid AND number = $2`,
      [taskId, attempt],
    );
  }

  /**
   * Waits for an operator's answer: woken at once by an answer given in this process, otherwise found by
   * looking every ANSWER_POLL_MS. Rejects with the signal's reason when it aborts (cancel, deadline, shutdown).
   */
  waitForAnswer(taskId: string, attempt: number, signal: AbortSignal): Promise<string> {
    const key = `${taskId}:${attempt}`;
    return new Promise<string>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      let looking = false;
      const done = () => {
        clearTimeout(timer);
        this.answered.off(key, look);
        signal.removeEventListener("abort", onAbort);
      };
      const onAbort = () => {
        done();
        reject(signal.reason);
      };
      const look = () => {
        if (looking || signal.aborted) return;
        looking = true;
        clearTimeout(timer);
        this.answerOf(taskId, attempt)
          .then((text) => {
            if (signal.aborted) return;
            if (text !== null) {
              done();
              resolve(text);
            } else timer = setTimeout(look, ANSWER_POLL_MS);
          })
          .catch(() => {
            if (!signal.aborted) timer = setTimeout(look, ANSWER_POLL_MS);
          })
          .finally(() => {
            looking = false;
          });
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      this.answered.on(key, look);
      look();
    });
  }

  /**
   * An operator answers the question the agent of a task's running attempt asked: stored on the attempt,
   * audited, in the task's events; the run waiting for it sends it to the agent as a follow-up message in the
   * agent's own task and context. Refused when the task has no attempt waiting for input.
   */
  async answer(caller: Caller, taskId: string, text: string): Promise<{ id: string; attempt: number }> {
    const answered = await this.units.run(async (unit) => {
      const [task] = await unit.tx.$queryRawUnsafe<{ state: string }[]>(
        `SELECT state FROM tasks WHERE id = $1::uuid`,
        taskId,
      );
      if (!task) throw notFound("Task", taskId);
      const [attempt] = await unit.tx.$queryRawUnsafe<
        { id: string; number: number; request: InputRequest | null; answered: boolean }[]
      >(
        `SELECT id, number, input_request AS request, input_answer IS NOT NULL AS answered FROM attempts
          WHERE task_id = $1::uuid AND state = 'running' ORDER BY number DESC LIMIT 1 FOR UPDATE`,
        taskId,
      );
      if (task.state !== "running" || !attempt?.request) {
        throw new DomainError(
          "CONFLICT",
          `Task ${taskId} is not waiting for input (it is ${task.state}); only an agent's open question can be answered.`,
        );
      }
      if (attempt.answered) {
        throw new DomainError(
          "CONFLICT",
          `The agent's question on task ${taskId} is answered already; the answer is on its way to the agent.`,
        );
      }
      const by = caller.actor.id;
      const at = new Date().toISOString();
      await unit.tx.$executeRawUnsafe(
        `UPDATE attempts SET input_answer = $2::jsonb WHERE id = $1::uuid`,
        attempt.id,
        JSON.stringify({ text, by, at }),
      );
      const number = Number(attempt.number);
      unit.audit.push({
        actor: caller.actor,
        action: "task.answer",
        resource: { type: "task", id: taskId },
        before: { attempt: number, kind: attempt.request.kind, question: attempt.request.question },
        after: { answer: text },
        ...(caller.client ? { client: caller.client } : {}),
      });
      unit.events.push({
        taskId,
        type: "input_answered",
        actor: by,
        data: { attempt: number, kind: attempt.request.kind, text },
      });
      return number;
    });
    this.answered.emit(`${taskId}:${answered}`);
    return { id: taskId, attempt: answered };
  }
}

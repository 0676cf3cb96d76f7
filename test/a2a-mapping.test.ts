import { type Message, type Part, Role, TaskState } from "@a2a-js/sdk";
import { describe, expect, it } from "vitest";
import { A2A_STATE_OF, agencyStatesOf, specFromMessage } from "../src/server/a2a/mapping.js";
import { TASK_STATES } from "../src/shared/task-state.js";

const part = (content: Part["content"]): Part => ({ content, mediaType: "", filename: "", metadata: undefined });
const text = (value: string) => part({ $case: "text", value });
const data = (value: unknown) => part({ $case: "data", value });
const msg = (...parts: Part[]): Message => ({
  messageId: "m1",
  contextId: "",
  taskId: "",
  role: Role.ROLE_USER,
  parts,
  metadata: undefined,
  extensions: [],
  referenceTaskIds: [],
});

describe("a message as a task spec", () => {
  it("takes the text as the description and its first line as the title, with the spec's defaults", () => {
    const made = specFromMessage(msg(text("\n  Fix the build  \nThe linter fails."), text("Second part.")));
    expect(made).toMatchObject({
      ok: true,
      spec: {
        title: "Fix the build",
        description: "Fix the build  \nThe linter fails.\n\nSecond part.",
        priority: "medium",
        riskTier: 2,
        capability: "script",
        input: {},
      },
    });
  });

  it("takes a data part as the spec; its own title and description win over the text", () => {
    const made = specFromMessage(
      msg(
        text("from the text"),
        data({ title: "Given title", description: "Given", priority: "high", input: { a: 1 } }),
      ),
    );
    expect(made).toMatchObject({
      ok: true,
      spec: { title: "Given title", description: "Given", priority: "high", input: { a: 1 } },
    });
  });

  it("cuts a long first line to the title's 200 characters", () => {
    const made = specFromMessage(msg(text("x".repeat(300))));
    expect(made.ok && made.spec.title).toBe(`${"x".repeat(199)}…`);
  });

  it("refuses what it cannot take, saying what to send instead", () => {
    const refused = (m: Message) => {
      const made = specFromMessage(m);
      return made.ok ? "accepted" : made.error;
    };
    expect(refused(msg(part({ $case: "url", value: "https://example.com/f" })))).toMatch(/a url part: .*input\.files/);
    expect(refused(msg(text("t"), data({}), data({})))).toMatch(/at most one data part/);
    expect(refused(msg(text("t"), data([1, 2])))).toMatch(/must be a JSON object/);
    expect(refused(msg(text("t"), data({ titel: "typo" })))).toMatch(
      /Unknown task spec field "titel".*the fields are: title/,
    );
    expect(refused(msg(text("   ")))).toMatch(/no text and its data part no title/);
    expect(refused(msg(text("t"), data({ riskTier: 7 })))).toMatch(/riskTier: Risk tier must be 1, 2 or 3/);
    expect(refused(msg(text("bad\u0000text")))).toMatch(/NUL character/);
  });
});

describe("agency states in A2A", () => {
  it("maps every agency state, and back", () => {
    expect(Object.keys(A2A_STATE_OF).sort()).toEqual([...TASK_STATES].sort());
    expect(A2A_STATE_OF).toMatchObject({
      queued: TaskState.TASK_STATE_SUBMITTED,
      running: TaskState.TASK_STATE_WORKING,
      accepted: TaskState.TASK_STATE_COMPLETED,
      failed: TaskState.TASK_STATE_FAILED,
      rejected: TaskState.TASK_STATE_FAILED,
      canceled: TaskState.TASK_STATE_CANCELED,
      changes_requested: TaskState.TASK_STATE_INPUT_REQUIRED,
    });
    expect(agencyStatesOf(TaskState.TASK_STATE_FAILED).sort()).toEqual(["failed", "rejected"]);
    // Waiting for an operator's approval is still the agency's work, not the client's turn.
    expect(agencyStatesOf(TaskState.TASK_STATE_WORKING).sort()).toEqual(["awaiting_approval", "canceling", "running"]);
    expect(agencyStatesOf(TaskState.TASK_STATE_AUTH_REQUIRED)).toEqual([]);
  });
});

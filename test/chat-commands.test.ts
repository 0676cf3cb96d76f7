import { describe, expect, it } from "vitest";
import { helpText, parseMessage } from "../src/server/chat/commands.js";

describe("chat command parsing", () => {
  it("reads every command with its arguments", () => {
    expect(parseMessage("/help")).toEqual({ kind: "command", command: { name: "help" } });
    expect(parseMessage("  /STATUS ")).toEqual({ kind: "command", command: { name: "status" } });
    expect(parseMessage("/tasks")).toEqual({ kind: "command", command: { name: "tasks", state: null } });
    expect(parseMessage("/tasks Running")).toEqual({ kind: "command", command: { name: "tasks", state: "running" } });
    expect(parseMessage("/task Fix   the login page \n  sed -i 's/old/new/' login.html\n echo done ")).toEqual({
      kind: "command",
      command: { name: "task", title: "Fix   the login page", script: "sed -i 's/old/new/' login.html\n echo done" },
    });
    expect(parseMessage("/cancel 7B0A8F5E wrong branch, redo")).toEqual({
      kind: "command",
      command: { name: "cancel", ref: "7b0a8f5e", reason: "wrong branch, redo" },
    });
    expect(parseMessage("/cancel 7b0a8f5e-7a51-4c5e-9a55-5a3c5f0d2b11")).toEqual({
      kind: "command",
      command: { name: "cancel", ref: "7b0a8f5e-7a51-4c5e-9a55-5a3c5f0d2b11", reason: null },
    });
    expect(parseMessage("/retry 7b0a8f5e7a51")).toEqual({
      kind: "command",
      command: { name: "retry", ref: "7b0a8f5e7a51" },
    });
  });

  it("treats anything not starting with / as free text", () => {
    expect(parseMessage("how busy are we? /status")).toEqual({ kind: "text" });
  });

  it("explains what is wrong with a malformed command", () => {
    const error = (s: string) => {
      const p = parseMessage(s);
      return p.kind === "invalid" ? p.error : `parsed as ${p.kind}`;
    };
    expect(error("/deploy now")).toBe("Unknown command /deploy.");
    expect(error("/task")).toMatch(/^Usage: \/task <title>, then the script on the next lines/);
    expect(error(`/task ${"x".repeat(201)}\necho hi`)).toMatch(/at most 200 characters/);
    // A script task without a script could only fail: refused, with how to give one.
    expect(error("/task Say hello")).toMatch(/^A script task needs a script.*Usage: \/task <title>/);
    expect(error("/task Say hello\n   \n")).toMatch(/^A script task needs a script/);
    expect(error("/tasks sleeping")).toMatch(/Unknown state "sleeping"; use one of queued, running/);
    expect(error("/tasks queued running")).toBe("Usage: /tasks [state]");
    expect(error("/cancel")).toBe("Usage: /cancel <task id> [reason]");
    expect(error("/cancel abc")).toMatch(/"abc" is not a task id/);
    expect(error("/cancel 7b0a8f5e%")).toMatch(/is not a task id/);
    expect(error("/retry")).toBe("Usage: /retry <task id>");
    expect(error("/retry 7b0a8f5e extra")).toBe("Usage: /retry <task id>");
    expect(error("/status now")).toBe("/status takes no arguments.");
  });

  it("lists every command in the help", () => {
    for (const c of ["/status", "/tasks [state]", "/task <title>", "/cancel", "/retry", "/help"]) {
      expect(helpText()).toContain(c);
    }
  });
});

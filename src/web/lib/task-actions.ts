import { hasRole, type Role } from "../../shared/roles.js";
import { type TaskState, TRANSITIONS, type TransitionActor } from "../../shared/task-state.js";

function mayAct(role: Role, by: readonly TransitionActor[]): boolean {
  return (by.includes("operator") && hasRole(role, "operator")) || (by.includes("admin") && role === "admin");
}

/** What a person with this role may do to a task in this state, read from the shared state machine. */
export function allowedActions(state: TaskState, role: Role | undefined): { cancel: boolean; retry: boolean } {
  if (!role) return { cancel: false, retry: false };
  const mine = TRANSITIONS.filter((t) => t.from === state && mayAct(role, t.by));
  return {
    cancel: mine.some((t) => t.name === "cancel"),
    retry: mine.some((t) => t.name === "retry"),
  };
}

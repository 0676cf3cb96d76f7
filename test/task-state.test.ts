import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DomainError } from "../src/server/errors.js";
import { taskSpecSchema } from "../src/shared/task-spec.js";
import { TASK_STATES, type TaskState, type TransitionActor } from "../src/shared/task-state.js";
import { DATABASES } from "./helpers/databases.js";
import { actor, type Harness, harness } from "./helpers/services.js";

/**
 * The state machine of the product specification (PRODUCT.md, "States"), written out here rather than
 * read from the code's table: `judging` is not stored (the council judges a result before it is stored),
 * so a verdict moves a task from `running` straight to accepted, changes_requested or rejected, or, where the
 * tier's policy requires a human (PRODUCT.md 11), an accepting one to awaiting_approval, which a person
 * approves (accepted) or rejects.
 */
const SPEC_STATES = [
  "queued",
  "running",
  "awaiting_approval",
  "accepted",
  "changes_requested",
  "rejected",
  "failed",
  "canceling",
  "canceled",
] as const satisfies readonly TaskState[];
const SYSTEM: TransitionActor[] = ["system"];
const PEOPLE: TransitionActor[] = ["operator", "admin"];
const SPEC: Record<string, TransitionActor[]> = {
  "queued>running": SYSTEM, // dispatch
  "running>queued": SYSTEM, // requeue: a failure with tries left, or a lost lease
  "running>failed": SYSTEM,
  "running>accepted": SYSTEM, // the council's verdict
  "running>changes_requested": SYSTEM,
  "running>rejected": SYSTEM,
  "running>awaiting_approval": SYSTEM, // an accepting verdict the tier's policy holds for a person
  "awaiting_approval>accepted": PEOPLE, // approve
  "awaiting_approval>rejected": PEOPLE, // reject
  "awaiting_approval>canceling": PEOPLE,
  "queued>canceling": PEOPLE,
  "running>canceling": PEOPLE,
  "canceling>canceled": SYSTEM,
  "changes_requested>queued": ["system", "operator", "admin"], // the council's loop re-dispatches on its own too
  "rejected>queued": PEOPLE, // retry
  "failed>queued": PEOPLE,
  "canceled>queued": PEOPLE,
  "accepted>changes_requested": ["admin"], // an admin's override of the verdict
  "accepted>rejected": ["admin"],
  "changes_requested>accepted": ["admin"],
  "changes_requested>rejected": ["admin"],
  "rejected>accepted": ["admin"],
  "rejected>changes_requested": ["admin"],
};
const ACTORS: TransitionActor[] = ["system", "operator", "admin"];

it("the code's states are the specification's, in one vocabulary", () => {
  expect([...TASK_STATES].sort()).toEqual([...SPEC_STATES].sort());
});

/**
 * Every (from, to, actor) through the real service and database: a task is put in `from`, then asked to
 * move to `to` as `actor`. An allowed move changes the stored state and writes its event; a refused one
 * fails with an error that names both states (and who may make it), and changes nothing.
 */
describe.each(DATABASES)("every transition, through the task service, on %s", (kind) => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness(kind);
  });
  afterAll(() => h?.dispose());

  async function taskIn(state: TaskState): Promise<string> {
    const t = await h.services.tasks.create(actor(), taskSpecSchema.parse({ title: `in ${state}` }));
    // Setup only: put the row in the state under test directly.
    await h.db.query('UPDATE tasks SET state = $2::"TaskState" WHERE id = $1::uuid', [t.id, state]);
    return t.id;
  }
  const stateOf = async (id: string) =>
    (await h.db.query<{ state: TaskState }>("SELECT state::text AS state FROM tasks WHERE id = $1::uuid", [id]))[0]
      ?.state;
  const eventsOf = (id: string) =>
    h.db.query<{ from_state: string | null; to_state: string | null; actor: string }>(
      "SELECT from_state::text, to_state::text, actor FROM task_events WHERE task_id = $1::uuid AND type = 'state_changed' ORDER BY seq",
      [id],
    );
  async function refusal(p: Promise<unknown>): Promise<DomainError> {
    const err = await p.then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DomainError);
    expect((err as DomainError).code).toBe("BAD_REQUEST");
    return err as DomainError;
  }

  for (const from of SPEC_STATES) {
    it(`from ${from}: each allowed move is made, each other one refused with both states named`, async () => {
      for (const to of SPEC_STATES) {
        const allowed = SPEC[`${from}>${to}`] ?? [];
        const id = await taskIn(from);
        // The refused actors first: the task stays where it is for the allowed one after them.
        for (const who of ACTORS.filter((a) => !allowed.includes(a))) {
          const err = await refusal(h.services.tasks.transition(id, [{ to, by: who, actorId: `${who}-1` }]));
          if (allowed.length) {
            expect(err.message).toContain(`from ${from} to ${to} only by ${allowed.join(" or ")}, not by ${who}`);
          } else {
            expect(err.message).toContain(`cannot go from ${from} to ${to}`);
          }
          expect(await stateOf(id), `${from} → ${to} by ${who}`).toBe(from);
          expect(await eventsOf(id)).toEqual([]);
        }
        const who = allowed[0];
        if (!who) continue;
        await h.services.tasks.transition(id, [{ to, by: who, actorId: `${who}-1` }]);
        expect(await stateOf(id), `${from} → ${to} by ${who}`).toBe(to);
        expect(await eventsOf(id)).toEqual([{ from_state: from, to_state: to, actor: `${who}-1` }]);
      }
    });
  }
});

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TERMINAL_STATES } from "../src/shared/task-state.js";
import { type RunningAgent, startA2AAgent } from "./helpers/a2a-agent.js";
import { DATABASES } from "./helpers/databases.js";
import { waitFor } from "./helpers/fault-worker.js";
import { ServerHome } from "./helpers/server-process.js";
import { withEvents } from "./helpers/task-events.js";

/**
 * The agency process running an attempt on an A2A agent is killed (SIGKILL) or stopped (SIGTERM, the attempt
 * handed back); the next process re-attaches to the agent's task by the id recorded on the attempt
 * (resubscribe when the agent streams, tasks/get when it is polled) instead of sending the task again.
 */
describe.each(DATABASES)("A2A re-attach after a restart on %s", (kind) => {
  let streaming: RunningAgent;
  let polled: RunningAgent;
  let home: ServerHome;

  beforeAll(async () => {
    streaming = await startA2AAgent({ streaming: true, skills: ["restream"] });
    polled = await startA2AAgent({ streaming: false, skills: ["repoll"] });
    home = new ServerHome(kind, { A2A_POLL_INTERVAL_MS: "50", SHUTDOWN_GRACE_MS: "0" });
  }, 60_000);
  afterAll(async () => {
    await home?.dispose();
    await streaming?.stop();
    await polled?.stop();
  });

  it("resubscribes to the agent's task after SIGKILL, and asks for a polled one after SIGTERM", async () => {
    let run = await home.start();
    await run.api.workers.register.mutate({
      name: "restream",
      protocol: "a2a",
      url: streaming.cardUrl,
      maxConcurrency: 2,
    });
    await run.api.workers.register.mutate({ name: "repoll", protocol: "a2a", url: polled.url, maxConcurrency: 2 });
    const make = (capability: string) =>
      run.api.tasks.create.mutate({
        title: `Outlive the agency (${capability})`,
        mode: "chore",
        capability,
        input: { a2a: { act: "steps", steps: 60, stepMs: 100 } },
      });
    const streamed = await make("restream");
    const recorded = (id: string) =>
      waitFor(
        "the agent's task id on the attempt",
        () => run.api.tasks.get.query({ id }),
        (t) => !!t.attempts[0]?.remoteTaskId,
        60_000,
      );
    const before = (await recorded(streamed.id)).attempts[0]?.remoteTaskId;
    await home.kill();

    run = await home.start();
    const t = await waitFor(
      "the streamed task to finish after the restart",
      () => withEvents(run.api, { id: streamed.id }),
      (x) => TERMINAL_STATES.includes(x.state),
      90_000,
    );
    expect(t.state).toBe("accepted");
    expect(t.attempts).toHaveLength(1);
    expect(t.attempts[0]?.remoteTaskId).toBe(before);
    expect(t.events.some((e) => e.type === "attempt_reattached")).toBe(true);
    expect(t.attempts[0]?.artifacts.map((a) => a.path)).toEqual(["steps.txt"]);
    // Sent once: the new process followed the same task at the agent.
    expect(streaming.started.filter((k) => k === `${streamed.id}:1`)).toHaveLength(1);

    const pollTask = await make("repoll");
    const polledBefore = (await recorded(pollTask.id)).attempts[0]?.remoteTaskId;
    expect(await home.stop()).toBe(0);
    run = await home.start();
    const p = await waitFor(
      "the polled task to finish after the restart",
      () => withEvents(run.api, { id: pollTask.id }),
      (x) => TERMINAL_STATES.includes(x.state),
      90_000,
    );
    expect(p.state).toBe("accepted");
    expect(p.attempts).toHaveLength(1);
    expect(p.attempts[0]?.remoteTaskId).toBe(polledBefore);
    expect(p.events.find((e) => e.type === "attempt_reattached")?.data.handedBack).toBe(true);
    expect(polled.started.filter((k) => k === `${pollTask.id}:1`)).toHaveLength(1);
  }, 300_000);
});

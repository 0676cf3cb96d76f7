import { afterAll, describe, expect, it } from "vitest";
import { DEFAULT_RETRY_POLICY } from "../src/server/config.js";
import { TERMINAL_STATES } from "../src/shared/task-state.js";
import { type ClusterNode, startSoloServer } from "./helpers/cluster.js";

/**
 * Liveness is not silence: a script that prints nothing for longer than its tier's try timeout (an idle timeout on
 * the worker's stream) is still working, and the reference worker's heartbeats say so. Before heartbeats, this task
 * ended "Worker reference said nothing for 60000 ms", three times over, and failed.
 */
describe("a silent script longer than the try timeout, at the default tier 2 policy", () => {
  let server: (ClusterNode & { dispose(): Promise<void> }) | undefined;
  afterAll(async () => {
    await server?.dispose();
  });

  it("`sleep 120` runs to the end through the real server and its built-in reference worker, and is accepted", async () => {
    // The test means something only while the script's silence outlasts the tier's idle timeout.
    expect(120_000).toBeGreaterThan(DEFAULT_RETRY_POLICY[2].tryTimeoutMs);
    // The server as `npm start` runs it: embedded database, built-in reference worker, default retry policy.
    server = await startSoloServer();
    const s = server;
    const created = await s.api.tasks.create.mutate({
      title: "Work quietly for two minutes",
      riskTier: 2,
      // Silent for two minutes, then a file that shows it ran to its end (a change task with no change is rejected).
      input: { script: "sleep 120 && echo slept > slept.txt" },
      acceptanceCriteria: [{ text: "it slept to the end", check: { kind: "command", command: "test -f slept.txt" } }],
    });
    // Polled once a second: two minutes of 50 ms polls would only load the server under test.
    const until = Date.now() + 200_000;
    let task = await s.api.tasks.get.query({ id: created.id });
    while (!TERMINAL_STATES.includes(task.state) && task.state !== "changes_requested") {
      if (Date.now() > until) throw new Error(`The silent task did not settle; it is ${task.state}:\n${s.output()}`);
      await new Promise((r) => setTimeout(r, 1_000));
      task = await s.api.tasks.get.query({ id: created.id });
    }
    expect(task.state).toBe("accepted");
    expect(task.attempts).toHaveLength(1);
    expect(task.attempts[0]).toMatchObject({ number: 1, state: "completed", verdict: "accept" });
    expect(task.attempts[0]?.artifacts.map((a) => a.path)).toEqual(["slept.txt"]);
  }, 480_000);
});

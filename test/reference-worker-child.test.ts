import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { afterAll, describe, expect, it } from "vitest";
import { type ReferenceWorkerChild, startReferenceWorkerChild } from "../src/server/execution/reference-worker.js";
import { silentLog } from "./helpers/services.js";

describe("the server's reference worker child", () => {
  let child: ReferenceWorkerChild | undefined;
  afterAll(async () => {
    await child?.stop();
  });

  it("gets none of the server's secrets in its environment, only the basics and WORKER_ settings", async () => {
    const secrets = {
      AGENCY_MASTER_KEY: "bWFzdGVyLWtleS1zaG91bGQtbmV2ZXItbGVhdmUtdGhlLXNlcnZlcg==",
      DATABASE_URL: "postgresql://owner:hunter2@127.0.0.1:5432/agency",
      AGENCY_BOOTSTRAP_TOKEN: "bootstrap-token-that-only-the-server-may-hold",
    };
    // An agents configuration meant for a worker of its own (its key is not set here): the server's worker, which
    // serves scripts only, must not take it, or it would refuse to start and take the server with it.
    const standalone = { WORKER_AGENTS: JSON.stringify({ claude: { command: ["true"], env: ["UNSET_AGENT_KEY"] } }) };
    const saved = { ...process.env };
    Object.assign(process.env, secrets, standalone, { WORKER_SANDBOX_TMP_MB: "64" });
    try {
      child = await startReferenceWorkerChild(silentLog, tmpdir());
    } finally {
      for (const name of [...Object.keys(secrets), ...Object.keys(standalone), "WORKER_SANDBOX_TMP_MB"]) {
        if (saved[name] === undefined) delete process.env[name];
        else process.env[name] = saved[name];
      }
    }
    const environ = readFileSync(`/proc/${child.pid}/environ`, "utf8").split("\0");
    const names = environ.map((kv) => kv.slice(0, kv.indexOf("=")));
    for (const [name, value] of Object.entries(secrets)) {
      expect(names).not.toContain(name);
      expect(environ.join("\n")).not.toContain(value);
    }
    expect(names).not.toContain("WORKER_AGENTS");
    expect(environ).toContain("WORKER_SANDBOX_TMP_MB=64");
    expect(names).toContain("PATH");
    expect(names).toContain("WORKER_TOKEN");
  });
});

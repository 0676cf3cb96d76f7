import { describe, expect, it } from "vitest";
import { loadConfig } from "../src/server/config.js";

describe("START_REFERENCE_WORKER", () => {
  const url = "postgresql://postgres@127.0.0.1:5432/test";

  it("is on by default with the embedded database and off with a Postgres server", () => {
    expect(loadConfig({}).startReferenceWorker).toBe(true);
    expect(loadConfig({ START_REFERENCE_WORKER: "" }).startReferenceWorker).toBe(true);
    expect(loadConfig({ DATABASE_URL: url }).startReferenceWorker).toBe(false);
    expect(loadConfig({ DATABASE_URL: url, START_REFERENCE_WORKER: "" }).startReferenceWorker).toBe(false);
  });

  it("follows an explicit value on either database", () => {
    expect(loadConfig({ START_REFERENCE_WORKER: "0" }).startReferenceWorker).toBe(false);
    expect(loadConfig({ START_REFERENCE_WORKER: "false" }).startReferenceWorker).toBe(false);
    expect(loadConfig({ DATABASE_URL: url, START_REFERENCE_WORKER: "1" }).startReferenceWorker).toBe(true);
    expect(loadConfig({ DATABASE_URL: url, START_REFERENCE_WORKER: "true" }).startReferenceWorker).toBe(true);
  });

  it("refuses another value, naming the variable", () => {
    expect(() => loadConfig({ START_REFERENCE_WORKER: "yes" })).toThrow(/START_REFERENCE_WORKER/);
  });
});

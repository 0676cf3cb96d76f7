import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // PGlite compiles its WASM per worker; two forks match the two cores.
    pool: "forks",
    maxWorkers: 2,
  },
});

// Entry of a judging thread (see judge-pool.ts). Plain JavaScript so that Node can start it as is: a
// thread does not inherit the parent's module hooks, so under tsx (`npm start`, vitest) it registers
// tsx's loader itself before importing the TypeScript judge.
import { workerData } from "node:worker_threads";

if (workerData.entry.endsWith(".ts")) {
  const { register } = await import("tsx/esm/api");
  register();
}
await import(workerData.entry);

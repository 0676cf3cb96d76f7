import { systemRouter } from "./system/router.js";
import { tasksRouter } from "./tasks/router.js";
import { router } from "./trpc.js";
import { viewsRouter } from "./views/router.js";
import { workersRouter } from "./workers/router.js";

export const appRouter = router({
  system: systemRouter,
  tasks: tasksRouter,
  views: viewsRouter,
  workers: workersRouter,
});

export type AppRouter = typeof appRouter;

import { auditRouter } from "./audit/router.js";
import { authRouter, tokensRouter, usersRouter } from "./auth/router.js";
import { chatRouter } from "./chat/router.js";
import { metricsRouter } from "./metrics/router.js";
import { provenanceRouter } from "./provenance/router.js";
import { systemRouter } from "./system/router.js";
import { tasksRouter } from "./tasks/router.js";
import { router } from "./trpc.js";
import { viewsRouter } from "./views/router.js";
import { webhooksRouter } from "./webhooks/router.js";
import { workersRouter } from "./workers/router.js";

export const appRouter = router({
  system: systemRouter,
  tasks: tasksRouter,
  views: viewsRouter,
  workers: workersRouter,
  auth: authRouter,
  users: usersRouter,
  tokens: tokensRouter,
  audit: auditRouter,
  provenance: provenanceRouter,
  metrics: metricsRouter,
  chat: chatRouter,
  webhooks: webhooksRouter,
});

export type AppRouter = typeof appRouter;

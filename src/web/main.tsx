// First: zod is told not to probe for eval before any schema is built (see the module).
import "./lib/zod-jitless.js";
import { QueryClientProvider } from "@tanstack/react-query";
import { lazy, StrictMode, Suspense } from "react";
import { createRoot } from "react-dom/client";
import { createBrowserRouter, Navigate, RouterProvider } from "react-router-dom";
import { Layout } from "./components/Layout.js";
import { NotFoundPage, RouteError } from "./components/RouteError.js";
import {
  importTaskDetail,
  importTaskList,
  prefetchSession,
  taskDetailLoader,
  taskListLoader,
} from "./lib/route-prefetch.js";
import { queryClient, trpc, trpcClient } from "./trpc.js";
import "./styles.css";

// Each page is its own chunk so the first load carries only the shell and the page it opens.
const TaskListPage = lazy(importTaskList);
const TaskDetailPage = lazy(importTaskDetail);
const SubmitPage = lazy(() => import("./task-submit/SubmitPage.js"));
const SignInPage = lazy(() => import("./sign-in/SignInPage.js"));
const WorkersPage = lazy(() => import("./workers/WorkersPage.js"));
const WorkerDetailPage = lazy(() => import("./workers/WorkerDetailPage.js"));
const AuditPage = lazy(() => import("./audit/AuditPage.js"));
const UsersPage = lazy(() => import("./admin/UsersPage.js"));
const WebhooksPage = lazy(() => import("./webhooks/WebhooksPage.js"));
const WebhookDetailPage = lazy(() => import("./webhooks/WebhookDetailPage.js"));
const TokensPage = lazy(() => import("./account/TokensPage.js"));
const PasswordPage = lazy(() => import("./account/PasswordPage.js"));
const MetricsPage = lazy(() => import("./metrics/MetricsPage.js"));
const ChatPage = lazy(() => import("./chat/ChatPage.js"));
const ApprovalsPage = lazy(() => import("./approvals/ApprovalsPage.js"));

// The sign-in check every page waits for goes out with the first route's prefetch, in the same batch.
prefetchSession();

/** A page's prefetch runs when it is opened, not again for a change of its own address (filters, "Load more"). */
const onlyOnArrival = ({ currentUrl, nextUrl }: { currentUrl: URL; nextUrl: URL }) =>
  currentUrl.pathname !== nextUrl.pathname;

const router = createBrowserRouter([
  {
    path: "sign-in",
    element: (
      <Suspense fallback={null}>
        <SignInPage />
      </Suspense>
    ),
  },
  {
    element: <Layout />,
    errorElement: <RouteError />,
    children: [
      { index: true, element: <Navigate to="/tasks" replace /> },
      { path: "tasks", element: <TaskListPage />, loader: taskListLoader, shouldRevalidate: onlyOnArrival },
      { path: "tasks/new", element: <SubmitPage /> },
      { path: "tasks/:id", element: <TaskDetailPage />, loader: taskDetailLoader, shouldRevalidate: onlyOnArrival },
      { path: "approvals", element: <ApprovalsPage /> },
      { path: "workers", element: <WorkersPage /> },
      { path: "workers/:id", element: <WorkerDetailPage /> },
      { path: "audit", element: <AuditPage /> },
      // Not "/metrics": the server answers that path with the Prometheus exposition.
      { path: "live-metrics", element: <MetricsPage /> },
      { path: "chat", element: <ChatPage /> },
      { path: "chat/:sessionId", element: <ChatPage /> },
      { path: "admin", element: <Navigate to="/admin/users" replace /> },
      { path: "admin/users", element: <UsersPage /> },
      { path: "admin/webhooks", element: <WebhooksPage /> },
      { path: "admin/webhooks/:id", element: <WebhookDetailPage /> },
      { path: "account/tokens", element: <TokensPage /> },
      { path: "account/password", element: <PasswordPage /> },
      { path: "*", element: <NotFoundPage /> },
    ],
  },
]);

const root = document.getElementById("root");
if (!root) throw new Error("index.html has no #root element");
createRoot(root).render(
  <StrictMode>
    <trpc.Provider client={trpcClient} queryClient={queryClient}>
      <QueryClientProvider client={queryClient}>
        <RouterProvider router={router} />
      </QueryClientProvider>
    </trpc.Provider>
  </StrictMode>,
);

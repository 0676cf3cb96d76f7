import { createTRPCQueryUtils } from "@trpc/react-query";
import type { LoaderFunctionArgs } from "react-router-dom";
import { listInput, parseUrlFilter, toTaskFilter } from "../tasks-list/filter-url.js";
import { queryClient, trpcClient } from "../trpc.js";

/**
 * A full page load would otherwise wait on a chain: the sign-in check, then the page's code, then its data.
 * The router calls these loaders as navigation starts, so the page's code and its first queries are asked
 * for at once, beside the sign-in check, and the HTTP batch link sends the queries in one request. They
 * fill the same cache entries the page reads (same procedure, same input), and never hold navigation up:
 * a loader starts the work and returns. A query refused (not signed in) is fetched again by the page.
 */
const utils = createTRPCQueryUtils({ queryClient, client: trpcClient });

export function prefetchSession(): void {
  void utils.auth.me.prefetch(undefined, { staleTime: 60_000 });
}

const importTaskList = () => import("../tasks-list/TaskListPage.js");
const importTaskDetail = () => import("../task-detail/TaskDetailPage.js");

export function taskListLoader({ request }: LoaderFunctionArgs): null {
  void importTaskList();
  const filter = parseUrlFilter(new URL(request.url).searchParams);
  void utils.tasks.list.prefetchInfinite(listInput(filter));
  void utils.tasks.count.prefetch({ filter: toTaskFilter(filter) });
  return null;
}

export function taskDetailLoader({ params }: LoaderFunctionArgs): null {
  void importTaskDetail();
  if (params.id) void utils.tasks.get.prefetch({ id: params.id });
  return null;
}

export { importTaskDetail, importTaskList };

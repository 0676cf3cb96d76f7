import { keepPreviousData } from "@tanstack/react-query";
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { Link, useSearchParams } from "react-router-dom";
import { STATE_EVENT_TYPES } from "../../shared/task-events.js";
import type { TaskSort } from "../../shared/task-vocabulary.js";
import { ErrorMessage } from "../components/ErrorMessage.js";
import { useHasRole } from "../components/useMe.js";
import { trpc } from "../trpc.js";
import { BulkActions } from "./BulkActions.js";
import { countText } from "./count-text.js";
import { FilterDrawer } from "./FilterDrawer.js";
import { FilterPanel } from "./FilterPanel.js";
import {
  isFiltered,
  listInput,
  MAX_PAGES,
  parsePages,
  parseUrlFilter,
  toSearchParams,
  toTaskFilter,
  type UrlFilter,
  withPages,
} from "./filter-url.js";
import { SavedViews } from "./SavedViews.js";
import { type Selection, TaskTable } from "./TaskTable.js";

/** Bursts of events (a bulk change) become one refetch. */
const LIVE_REFRESH_MS = 250;

/** The only events that change a list row: a task created, or moved to another state. */
const LIST_EVENT_KINDS = [...STATE_EVENT_TYPES];

/**
 * Refetches the list whenever a task is created or changes state anywhere, so it shows up; the worker's
 * output and other events are not sent to the list at all (the subscription asks only for these kinds).
 * A refetch would cancel a "Load more" in flight and drop that page, so it waits for the page instead.
 */
function useLiveTaskList(fetchingNextPage: boolean) {
  const utils = trpc.useUtils();
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const busy = useRef(fetchingNextPage);
  const deferred = useRef(false);
  busy.current = fetchingNextPage;

  const refresh = useCallback(() => {
    if (timer.current) return;
    timer.current = setTimeout(() => {
      timer.current = null;
      void utils.tasks.count.invalidate();
      if (busy.current) deferred.current = true;
      else void utils.tasks.list.invalidate();
    }, LIVE_REFRESH_MS);
  }, [utils]);

  useEffect(() => {
    if (!fetchingNextPage && deferred.current) {
      deferred.current = false;
      void utils.tasks.list.invalidate();
    }
  }, [fetchingNextPage, utils]);
  useEffect(
    () => () => {
      if (timer.current) clearTimeout(timer.current);
    },
    [],
  );
  return trpc.tasks.onEvent.useSubscription(
    { kinds: LIST_EVENT_KINDS },
    {
      // Events between the list's fetch and the subscription's start would otherwise be missed.
      onStarted: refresh,
      onData: refresh,
    },
  );
}

export default function TaskListPage() {
  const [params, setParams] = useSearchParams();
  const paramString = params.toString();
  const urlFilter = useMemo(() => parseUrlFilter(new URLSearchParams(paramString)), [paramString]);
  // The filter alone: "Load more" changes the address (`pages`) but not the list it pages through.
  const filterKey = useMemo(() => toSearchParams(urlFilter).toString(), [urlFilter]);
  const wantedPages = parsePages(params);

  const setFilter = useCallback(
    (next: UrlFilter) => setParams(toSearchParams(next), { replace: next.text !== urlFilter.text }),
    [setParams, urlFilter.text],
  );
  const clear = useCallback(() => setParams(new URLSearchParams()), [setParams]);
  const setSort = useCallback((sort: TaskSort) => setFilter({ ...urlFilter, sort }), [setFilter, urlFilter]);

  const list = trpc.tasks.list.useInfiniteQuery(listInput(urlFilter), {
    getNextPageParam: (last) => last.nextCursor,
    placeholderData: keepPreviousData,
    // A filter the server refuses stays refused: no retry.
    retry: (failures, err) => err.data?.code !== "BAD_REQUEST" && failures < 1,
  });
  // The server checks the filter against its schema (src/shared/task-list.ts): this page does not load
  // zod for it, and the rules live in one place. Its refusal names each problem.
  const refused = list.error?.data?.code === "BAD_REQUEST" ? list.error : null;
  const filterProblems = refused ? (refused.data?.fieldErrors?.map((e) => e.message) ?? [refused.message]) : null;
  const total = trpc.tasks.count.useQuery(
    { filter: toTaskFilter(urlFilter) },
    { placeholderData: keepPreviousData, retry: (failures, err) => err.data?.code !== "BAD_REQUEST" && failures < 1 },
  );
  const live = useLiveTaskList(list.isFetchingNextPage);
  const loadedPages = list.data?.pages.length ?? 0;
  // Brings back as many pages as the address says were loaded (after a reload, or a link), one after another.
  const { hasNextPage, isFetching, fetchNextPage } = list;
  useEffect(() => {
    if (loadedPages > 0 && loadedPages < wantedPages && hasNextPage && !isFetching) void fetchNextPage();
  }, [loadedPages, wantedPages, hasNextPage, isFetching, fetchNextPage]);
  // Past MAX_PAGES the address keeps MAX_PAGES: a reload brings back that many.
  const loadMore = () => {
    if (loadedPages >= MAX_PAGES) void fetchNextPage();
    else setParams((prev) => withPages(prev, loadedPages + 1), { replace: true });
  };
  const tasks = useMemo(() => list.data?.pages.flatMap((p) => p.items) ?? [], [list.data]);
  const filtered = isFiltered(urlFilter);
  const canAct = useHasRole("operator");
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());
  // A changed filter is a different list: a selection made on the previous one must not carry over.
  // biome-ignore lint/correctness/useExhaustiveDependencies: resets when the filter changes.
  useEffect(() => setSelected(new Set()), [filterKey]);
  const selection: Selection = useMemo(
    () => ({
      selected,
      toggle: (id, on) =>
        setSelected((prev) => {
          const next = new Set(prev);
          if (on) next.add(id);
          else next.delete(id);
          return next;
        }),
      toggleAll: (on) => setSelected(on ? new Set(tasks.map((t) => t.id)) : new Set()),
    }),
    [selected, tasks],
  );
  const shownIds = useMemo(() => new Set(tasks.map((t) => t.id)), [tasks]);
  const selectedIds = useMemo(() => [...selected].filter((id) => shownIds.has(id)), [selected, shownIds]);
  const titles = useMemo(() => new Map(tasks.map((t) => [t.id, t.title])), [tasks]);

  return (
    <div className="page">
      <div className="page-head">
        <h1>Tasks</h1>
        {canAct ? (
          <Link to="/tasks/new" className="btn btn-primary">
            New task
          </Link>
        ) : null}
      </div>
      <div className="list-layout">
        <FilterDrawer filter={urlFilter}>
          <FilterPanel filter={urlFilter} onChange={setFilter} onClear={clear} />
        </FilterDrawer>
        <section className="list-main" aria-label="Task list">
          <SavedViews filter={urlFilter} onApply={setFilter} />
          {filterProblems ? (
            <ErrorMessage title="This filter cannot be used:">
              <ul>
                {filterProblems.map((message) => (
                  <li key={message}>{message}</li>
                ))}
              </ul>
            </ErrorMessage>
          ) : null}
          {live.status === "error" ? (
            <ErrorMessage title="Live updates stopped:" error={live.error}>
              <button type="button" className="btn btn-small" onClick={() => live.reset()}>
                Reconnect
              </button>
            </ErrorMessage>
          ) : null}
          <div className="list-status" aria-live="polite">
            <span data-testid="task-count">
              {total.data ? countText(total.data.count, total.data.capped) : ""}
              {total.data && list.data && list.hasNextPage ? (
                <span className="muted"> · {tasks.length.toLocaleString("en-US")} shown</span>
              ) : null}
            </span>
            <span className="muted">{list.isFetching && list.data ? "Updating…" : ""}</span>
          </div>
          {list.error && !refused ? <ErrorMessage title="Could not load tasks:" error={list.error} /> : null}
          {list.isPending && !list.error ? <p className="loading table-placeholder">Loading tasks…</p> : null}
          {list.data && tasks.length === 0 ? (
            <div className="empty-state">
              {filtered ? (
                <>
                  <p>No tasks match these filters.</p>
                  <button type="button" className="btn" onClick={clear}>
                    Clear filters
                  </button>
                </>
              ) : (
                <>
                  <p>No tasks yet.</p>
                  {canAct ? (
                    <Link to="/tasks/new" className="btn btn-primary">
                      Submit the first task
                    </Link>
                  ) : null}
                </>
              )}
            </div>
          ) : null}
          {canAct && list.data ? (
            <BulkActions
              selectedIds={selectedIds}
              filter={toTaskFilter(urlFilter)}
              noneMatch={tasks.length === 0}
              titles={titles}
              onDone={() => setSelected(new Set())}
            />
          ) : null}
          {tasks.length ? (
            <TaskTable
              tasks={tasks}
              selection={canAct ? selection : undefined}
              sort={urlFilter.sort}
              onSort={setSort}
            />
          ) : null}
          {list.hasNextPage ? (
            <div className="load-more">
              <button
                type="button"
                className="btn"
                // Fetching the next page while the loaded ones are refetched would drop one of the two.
                disabled={list.isFetching}
                onClick={loadMore}
              >
                {list.isFetchingNextPage ? "Loading…" : "Load more"}
              </button>
            </div>
          ) : null}
        </section>
      </div>
    </div>
  );
}

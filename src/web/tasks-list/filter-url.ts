import type { TaskFilter } from "../../shared/task-list.js";
import { TASK_STATES, type TaskState } from "../../shared/task-state.js";
import {
  MODES,
  type Mode,
  PRIORITIES,
  type Priority,
  type RiskTier,
  TASK_SORTS,
  type TaskSort,
} from "../../shared/task-vocabulary.js";
import { toDayString } from "../lib/format.js";

/**
 * The list's filter as it lives in the address bar, so a reload or a shared link shows the same list:
 * `?state=queued,running&priority=high&tier=1&mode=fix&q=text&from=2026-01-31&to=2026-02-01&sort=priority_desc`.
 * Dates are local calendar days; `to` includes its whole day.
 */
export interface UrlFilter {
  states: TaskState[];
  priorities: Priority[];
  riskTiers: RiskTier[];
  modes: Mode[];
  text: string;
  from: string;
  to: string;
  sort: TaskSort;
}

export const DEFAULT_SORT: TaskSort = "created_desc";
const DAY = /^\d{4}-\d{2}-\d{2}$/;

/** `?state=queued,running` and `?state=queued&state=running` (as other tools write it) mean the same. */
function list<T extends string | number>(params: URLSearchParams, key: string, allowed: readonly T[]): T[] {
  const wanted = params.getAll(key).flatMap((v) => v.split(","));
  // Keeps the canonical order so equal filters produce equal URLs.
  return allowed.filter((a) => wanted.includes(String(a)));
}

export function parseUrlFilter(params: URLSearchParams): UrlFilter {
  const sort = params.get("sort");
  const from = params.get("from") ?? "";
  const to = params.get("to") ?? "";
  return {
    states: list(params, "state", TASK_STATES),
    priorities: list(params, "priority", PRIORITIES),
    riskTiers: list(params, "tier", [1, 2, 3] as const),
    modes: list(params, "mode", MODES),
    text: (params.get("q") ?? "").slice(0, 200),
    from: DAY.test(from) ? from : "",
    to: DAY.test(to) ? to : "",
    sort: TASK_SORTS.find((s) => s === sort) ?? DEFAULT_SORT,
  };
}

export function toSearchParams(f: UrlFilter): URLSearchParams {
  const p = new URLSearchParams();
  if (f.states.length) p.set("state", f.states.join(","));
  if (f.priorities.length) p.set("priority", f.priorities.join(","));
  if (f.riskTiers.length) p.set("tier", f.riskTiers.join(","));
  if (f.modes.length) p.set("mode", f.modes.join(","));
  if (f.text.trim()) p.set("q", f.text.trim());
  if (f.from) p.set("from", f.from);
  if (f.to) p.set("to", f.to);
  if (f.sort !== DEFAULT_SORT) p.set("sort", f.sort);
  return p;
}

const startOfDay = (day: string) => new Date(`${day}T00:00:00`);
const endOfDay = (day: string) => new Date(`${day}T23:59:59.999`);

/** The API's filter (also what a saved view stores). */
/** Rows per page of the task list. */
export const PAGE_SIZE = 50;

/** What the task list asks `tasks.list` for (the page and the route's prefetch must ask the same). */
export function listInput(f: UrlFilter) {
  return { filter: toTaskFilter(f), limit: PAGE_SIZE };
}

export function toTaskFilter(f: UrlFilter): TaskFilter {
  return {
    ...(f.states.length ? { states: f.states } : {}),
    ...(f.priorities.length ? { priorities: f.priorities } : {}),
    ...(f.riskTiers.length ? { riskTiers: f.riskTiers } : {}),
    ...(f.modes.length ? { modes: f.modes } : {}),
    ...(f.text.trim() ? { text: f.text.trim() } : {}),
    ...(f.from ? { createdFrom: startOfDay(f.from) } : {}),
    ...(f.to ? { createdTo: endOfDay(f.to) } : {}),
    sort: f.sort,
  };
}

/** A saved view's filter back into the address bar's form. */
export function fromTaskFilter(f: TaskFilter): UrlFilter {
  const day = (d: Date | string | number | undefined | null | unknown) =>
    d instanceof Date || typeof d === "string" || typeof d === "number" ? toDayString(new Date(d)) : "";
  return {
    states: f.states ?? [],
    priorities: f.priorities ?? [],
    riskTiers: f.riskTiers ?? [],
    modes: f.modes ?? [],
    text: f.text ?? "",
    from: f.createdFrom ? day(f.createdFrom) : "",
    to: f.createdTo ? day(f.createdTo) : "",
    sort: f.sort ?? DEFAULT_SORT,
  };
}

export const isFiltered = (f: UrlFilter): boolean =>
  f.states.length + f.priorities.length + f.riskTiers.length + f.modes.length > 0 ||
  !!f.text.trim() ||
  !!f.from ||
  !!f.to;

/**
 * How many pages of the list were loaded with "Load more": `?pages=3` in the address, so a reload
 * shows the same rows. 1 when absent or not a whole number; at most MAX_PAGES.
 */
export const MAX_PAGES = 20;
export function parsePages(params: URLSearchParams): number {
  const n = Number(params.get("pages"));
  return Number.isInteger(n) && n >= 1 ? Math.min(n, MAX_PAGES) : 1;
}

/** `params` with `pages` set (dropped at 1, the default). */
export function withPages(params: URLSearchParams, pages: number): URLSearchParams {
  const next = new URLSearchParams(params);
  if (pages > 1) next.set("pages", String(Math.min(pages, MAX_PAGES)));
  else next.delete("pages");
  return next;
}

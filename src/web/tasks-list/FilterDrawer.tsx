import { type ReactNode, useCallback, useEffect, useId, useRef, useState } from "react";
import { NARROW_SCREEN, useMediaQuery } from "../components/useMediaQuery.js";
import type { UrlFilter } from "./filter-url.js";

/** How many filters narrow the list (each ticked box, the search text, each date); the sort is not one. */
export function activeFilterCount(f: UrlFilter): number {
  return (
    f.states.length +
    f.priorities.length +
    f.riskTiers.length +
    f.modes.length +
    (f.text.trim() ? 1 : 0) +
    (f.from ? 1 : 0) +
    (f.to ? 1 : 0)
  );
}

const FOCUSABLE = "a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea";

/**
 * The task list's filters: a side column on a wide screen; on a narrow one a "Filters (n)" button that opens
 * them in a drawer over the page, so the list starts near the top. The drawer is modal: focus moves into it,
 * Tab stays inside, Escape, the backdrop and "Show tasks" close it and focus returns to the button. The
 * filters stay mounted either way, so a search being typed is not lost when the drawer closes.
 */
export function FilterDrawer({ filter, children }: { filter: UrlFilter; children: ReactNode }) {
  const narrow = useMediaQuery(NARROW_SCREEN);
  const [open, setOpen] = useState(false);
  const id = useId();
  const button = useRef<HTMLButtonElement>(null);
  const drawer = useRef<HTMLDivElement>(null);
  const count = activeFilterCount(filter);
  const shown = narrow && open;

  useEffect(() => {
    if (!narrow) setOpen(false);
  }, [narrow]);
  useEffect(() => {
    if (shown) drawer.current?.querySelector<HTMLElement>(FOCUSABLE)?.focus();
  }, [shown]);

  const close = useCallback(() => {
    setOpen(false);
    button.current?.focus();
  }, []);
  // While the drawer is open, Escape closes it and Tab cycles inside it.
  useEffect(() => {
    if (!shown) return;
    const onKeyDown = (e: KeyboardEvent) => {
      if (e.key === "Escape") {
        e.preventDefault();
        close();
        return;
      }
      if (e.key !== "Tab" || !drawer.current) return;
      const targets = [...drawer.current.querySelectorAll<HTMLElement>(FOCUSABLE)];
      const first = targets[0];
      const last = targets.at(-1);
      const inside = drawer.current.contains(document.activeElement);
      if (e.shiftKey && (document.activeElement === first || !inside)) {
        e.preventDefault();
        last?.focus();
      } else if (!e.shiftKey && (document.activeElement === last || !inside)) {
        e.preventDefault();
        first?.focus();
      }
    };
    document.addEventListener("keydown", onKeyDown);
    return () => document.removeEventListener("keydown", onKeyDown);
  }, [shown, close]);

  const body = (
    <>
      <div className="filter-drawer-head">
        <h2 id={`${id}-title`}>Filters</h2>
        <button type="button" className="btn btn-small" onClick={close}>
          Close
        </button>
      </div>
      {children}
      <div className="filter-drawer-foot">
        <span className="muted">{count === 1 ? "1 filter on" : `${count} filters on`}</span>
        <button type="button" className="btn btn-primary" onClick={close}>
          Show tasks
        </button>
      </div>
    </>
  );

  return (
    <aside className="filter-aside">
      <button
        ref={button}
        type="button"
        className="btn filters-toggle"
        aria-expanded={shown}
        aria-controls={`${id}-drawer`}
        onClick={() => setOpen(true)}
      >
        {count ? `Filters (${count})` : "Filters"}
      </button>
      {/* One element either way (React keeps it and the filters in it): a modal drawer, or the side column. */}
      {shown ? (
        <div
          ref={drawer}
          id={`${id}-drawer`}
          className="filter-drawer"
          data-open=""
          role="dialog"
          aria-modal="true"
          aria-labelledby={`${id}-title`}
        >
          {body}
        </div>
      ) : (
        <div ref={drawer} id={`${id}-drawer`} className="filter-drawer" hidden={narrow}>
          {body}
        </div>
      )}
      {shown ? <div className="drawer-backdrop" aria-hidden="true" onClick={close} /> : null}
    </aside>
  );
}

import { useEffect, useRef } from "react";
import { useLocation } from "react-router-dom";

/** How long a new page may take to show its heading (its data loading first) before focus is left alone. */
const HEADING_WAIT_MS = 5_000;

/**
 * After an in-app navigation, puts keyboard focus on the new page's heading, as a full page load would put a
 * screen reader at its top, instead of leaving it on the link that was clicked (or on the body). The heading
 * may appear only once the page's data is loaded, so it is waited for. Focus the reader has already moved
 * into the page (a field, a button) is never taken away.
 */
export function useFocusHeading(main: React.RefObject<HTMLElement | null>) {
  const { pathname } = useLocation();
  // The page the console opened on keeps the browser's own focus; only a later navigation moves it.
  const shown = useRef(pathname);
  useEffect(() => {
    if (shown.current === pathname) return;
    shown.current = pathname;
    const root = main.current;
    if (!root) return;
    const tryFocus = (): boolean => {
      const h1 = root.querySelector("h1");
      if (!h1) return false;
      const active = document.activeElement;
      if (active && active !== document.body && root.contains(active)) return true;
      if (!h1.hasAttribute("tabindex")) h1.setAttribute("tabindex", "-1");
      h1.focus();
      return true;
    };
    if (tryFocus()) return;
    const observer = new MutationObserver(() => {
      if (tryFocus()) observer.disconnect();
    });
    observer.observe(root, { childList: true, subtree: true });
    const timer = setTimeout(() => observer.disconnect(), HEADING_WAIT_MS);
    return () => {
      observer.disconnect();
      clearTimeout(timer);
    };
  }, [pathname, main]);
}

import { useCallback, useSyncExternalStore } from "react";

/** The console's one narrow-screen breakpoint; styles.css uses the same width in its "Narrow screens" block. */
export const NARROW_SCREEN = "(max-width: 700px)";

/** Whether `query` matches now, re-rendering when that changes (a window resized or a phone turned). */
export function useMediaQuery(query: string): boolean {
  const subscribe = useCallback(
    (onChange: () => void) => {
      const list = window.matchMedia(query);
      list.addEventListener("change", onChange);
      return () => list.removeEventListener("change", onChange);
    },
    [query],
  );
  return useSyncExternalStore(subscribe, () => window.matchMedia(query).matches);
}

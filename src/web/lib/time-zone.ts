import { useSyncExternalStore } from "react";

/** Where times to the second are shown: the browser's zone or UTC. Remembered in this browser. */
export type TimeZoneChoice = "local" | "utc";

const STORAGE_KEY = "agency.timeZone";
const listeners = new Set<() => void>();

function read(): TimeZoneChoice {
  try {
    return localStorage.getItem(STORAGE_KEY) === "utc" ? "utc" : "local";
  } catch {
    return "local";
  }
}

let current: TimeZoneChoice = typeof window === "undefined" ? "local" : read();

export function setTimeZoneChoice(choice: TimeZoneChoice): void {
  current = choice;
  try {
    localStorage.setItem(STORAGE_KEY, choice);
  } catch {
    // Storage refused (private mode, quota): the choice holds until the page is reloaded.
  }
  for (const l of listeners) l();
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  // Another tab's choice applies here too.
  const onStorage = (e: StorageEvent) => {
    if (e.key !== STORAGE_KEY) return;
    current = read();
    listener();
  };
  window.addEventListener("storage", onStorage);
  return () => {
    listeners.delete(listener);
    window.removeEventListener("storage", onStorage);
  };
}

export function useTimeZoneChoice(): TimeZoneChoice {
  return useSyncExternalStore(
    subscribe,
    () => current,
    () => "local",
  );
}

const pad = (n: number, w = 2) => String(n).padStart(w, "0");

/** `2026-12-05 07:05:31` in the browser's zone, or `2026-12-05 07:05:31 UTC`. */
export function formatToSecond(d: Date, zone: TimeZoneChoice): string {
  if (zone === "utc") {
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
  }
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

import type { DispatchState } from "../../shared/worker-detail.js";

/** A worker's dispatch state as the console names it (the workers list and the worker's page). */
export const DISPATCH_LABELS: Record<DispatchState, string> = {
  active: "Taking work",
  paused: "Paused",
  draining: "Draining",
  drained: "Drained",
};

export const DISPATCH_HELP: Record<DispatchState, string> = {
  active: "Dispatch sends it new attempts.",
  paused: "An admin paused it: no new attempt until it is resumed; running ones finish.",
  draining: "An admin is draining it: no new attempt; it shows as drained once its running attempts end.",
  drained: "Drained: nothing runs on it and it takes no new attempt until it is resumed.",
};

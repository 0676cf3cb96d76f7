import { Time } from "../components/Time.js";
import type { RouterOutputs } from "../trpc.js";

type WorkerView = RouterOutputs["workers"]["list"][number];

const BREAKER_LABELS: Record<WorkerView["breaker"]["state"], string> = {
  closed: "Closed",
  open: "Open",
  half_open: "Half-open",
  tripped: "Tripped by hand",
};

const BREAKER_HELP: Record<WorkerView["breaker"]["state"], string> = {
  closed: "Calls go through.",
  open: "Too many recent failures: work goes to other capable workers until the cool-down ends.",
  half_open: "Cool-down over: a few calls are let through to see whether the worker recovered.",
  tripped: "An admin holds the breaker open until someone resets it; it stays so across restarts.",
};

const HEALTH_LABELS: Record<WorkerView["health"], string> = {
  unknown: "Not checked yet",
  ok: "Healthy",
  degraded: "Degraded",
  down: "Down",
};

/** A worker's breaker state and since when (the workers list and the worker's page). */
export function BreakerStatus({ breaker }: { breaker: WorkerView["breaker"] }) {
  return (
    <>
      <span className="breaker-badge" data-breaker={breaker.state} title={BREAKER_HELP[breaker.state]}>
        {BREAKER_LABELS[breaker.state]}
      </span>
      {breaker.since ? (
        <span className="muted small">
          {" "}
          since <Time value={breaker.since} short />
        </span>
      ) : null}
    </>
  );
}

/** A worker's health and when it was last checked. */
export function HealthStatus({ health, checkedAt }: { health: WorkerView["health"]; checkedAt: Date | null }) {
  return (
    <>
      <span className="health-badge" data-health={health}>
        {HEALTH_LABELS[health]}
      </span>
      {checkedAt ? (
        <span className="muted small">
          {" "}
          checked <Time value={checkedAt} short />
        </span>
      ) : null}
    </>
  );
}

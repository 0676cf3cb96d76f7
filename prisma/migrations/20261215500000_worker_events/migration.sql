-- Worker detail (issue #14): a worker's dispatch state, set by an admin and kept across restarts.
-- "active": takes work; "paused": takes no new attempt until resumed; "draining": takes no new attempt and
-- becomes "drained" once its running attempts have ended. In-flight attempts finish normally in all of them.
ALTER TABLE "workers" ADD COLUMN "dispatch_state" VARCHAR(16) NOT NULL DEFAULT 'active';
ALTER TABLE "workers" ADD COLUMN "dispatch_reason" VARCHAR(500);
ALTER TABLE "workers" ADD COLUMN "dispatch_changed_by" VARCHAR(128);
ALTER TABLE "workers" ADD COLUMN "dispatch_changed_at" TIMESTAMPTZ(3);
ALTER TABLE "workers" ADD CONSTRAINT "workers_dispatch_state_check"
    CHECK ("dispatch_state" IN ('active', 'paused', 'draining', 'drained'));

-- A worker's history: its circuit breaker's changes, its health changes, and what admins did to it
-- (pause, drain, resume, trip, reset) with their reason; "drained" when a drain completes. Kept per worker
-- up to the newest 500 rows (the writer prunes older ones); removed with the worker.
CREATE TABLE "worker_events" (
    "seq" BIGSERIAL NOT NULL,
    "worker_id" UUID NOT NULL,
    "kind" VARCHAR(16) NOT NULL,
    "from_state" VARCHAR(16),
    "to_state" VARCHAR(16),
    "reason" VARCHAR(2000),
    "task_id" UUID,
    "actor" VARCHAR(128),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "worker_events_pkey" PRIMARY KEY ("seq")
);

CREATE INDEX "worker_events_worker_id_seq_idx" ON "worker_events"("worker_id", "seq" DESC);

ALTER TABLE "worker_events" ADD CONSTRAINT "worker_events_worker_id_fkey" FOREIGN KEY ("worker_id") REFERENCES "workers"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- The worker page's error rate and latency over time read a worker's ended attempts by start time.
CREATE INDEX "attempts_worker_id_started_at_idx" ON "attempts"("worker_id", "started_at");

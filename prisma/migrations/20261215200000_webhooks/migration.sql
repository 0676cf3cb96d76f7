-- Webhooks (issue #14): endpoints an admin registers with an event filter, and a durable outbox of
-- deliveries. `secret` is the signing secret sealed with the keystore's SecretBox (never in clear).
CREATE TABLE "webhook_endpoints" (
    "id" UUID NOT NULL,
    "name" VARCHAR(100) NOT NULL,
    "url" VARCHAR(500) NOT NULL,
    "events" TEXT[] NOT NULL,
    "format" VARCHAR(16) NOT NULL DEFAULT 'standard',
    "secret" VARCHAR(1000) NOT NULL,
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    "disabled_reason" VARCHAR(500),
    "created_by" VARCHAR(128) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "webhook_endpoints_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "webhook_endpoints_name_key" ON "webhook_endpoints"("name");

-- One row per (endpoint, event): claimed with FOR UPDATE SKIP LOCKED under a lease, so a row a dead
-- process held is taken again once its lease has expired, and two processes never send it at once.
-- `event_id` is the webhook-id header: the same across retries and replays, so receivers can dedupe.
CREATE TABLE "webhook_deliveries" (
    "id" UUID NOT NULL,
    "endpoint_id" UUID NOT NULL,
    "event_id" VARCHAR(200) NOT NULL,
    "event_type" VARCHAR(64) NOT NULL,
    "payload" JSONB NOT NULL,
    "status" VARCHAR(16) NOT NULL DEFAULT 'pending',
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "next_attempt_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "lease_owner" VARCHAR(100),
    "lease_expires_at" TIMESTAMPTZ(3),
    "response_status" INTEGER,
    "response_body" VARCHAR(4096),
    "error" VARCHAR(1000),
    "duration_ms" INTEGER,
    "delivered_at" TIMESTAMPTZ(3),
    "replay_of" UUID,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "webhook_deliveries_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "webhook_deliveries_endpoint_id_fkey" FOREIGN KEY ("endpoint_id")
        REFERENCES "webhook_endpoints"("id") ON DELETE CASCADE ON UPDATE CASCADE
);
-- An event becomes at most one delivery per endpoint; a replay is a further row that names its original.
CREATE UNIQUE INDEX "webhook_deliveries_endpoint_event_key" ON "webhook_deliveries"("endpoint_id", "event_id")
    WHERE "replay_of" IS NULL;
CREATE INDEX "webhook_deliveries_endpoint_id_created_at_idx" ON "webhook_deliveries"("endpoint_id", "created_at" DESC);
CREATE INDEX "webhook_deliveries_due_idx" ON "webhook_deliveries"("next_attempt_at")
    WHERE "status" IN ('pending', 'delivering');

-- How far the task event log has been turned into deliveries: events after `last_seq` are still to
-- come. It starts at the log's end, so the history before webhooks existed is not sent.
CREATE TABLE "webhook_cursors" (
    "name" VARCHAR(64) NOT NULL,
    "last_seq" BIGINT NOT NULL,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "webhook_cursors_pkey" PRIMARY KEY ("name")
);
INSERT INTO "webhook_cursors" ("name", "last_seq") SELECT 'task_events', COALESCE(max("seq"), 0) FROM "task_events";

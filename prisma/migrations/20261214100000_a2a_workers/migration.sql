-- A2A workers (issue #15): a worker speaks protocol v1 (the agency's JSON over HTTP) or "a2a" (Agent2Agent,
-- driven with @a2a-js/sdk). An A2A worker's url is its Agent Card; the card as last read is kept for the
-- console and refreshed with every health check. `capabilities_from_card`: the worker's capabilities follow
-- the card's skills (no capability was given at registration).
ALTER TABLE "workers" ADD COLUMN "protocol" VARCHAR(8) NOT NULL DEFAULT 'v1';
ALTER TABLE "workers" ADD COLUMN "card" JSONB;
ALTER TABLE "workers" ADD COLUMN "card_fetched_at" TIMESTAMPTZ(3);
ALTER TABLE "workers" ADD COLUMN "capabilities_from_card" BOOLEAN NOT NULL DEFAULT false;

-- The agent's own task and context for an attempt on an A2A worker: a process that re-attaches (after a
-- restart) or a retried try resubscribes to that task instead of starting the work over; cancel names it.
ALTER TABLE "attempts" ADD COLUMN "remote_task_id" VARCHAR(200);
ALTER TABLE "attempts" ADD COLUMN "remote_context_id" VARCHAR(200);
-- The agent's open question (A2A input-required / auth-required) and the operator's answer to it.
ALTER TABLE "attempts" ADD COLUMN "input_request" JSONB;
ALTER TABLE "attempts" ADD COLUMN "input_answer" JSONB;

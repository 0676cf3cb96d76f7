-- Usage and cost (issue #14): what the worker reported for an attempt (`usage` in its result), in
-- columns so the roll-ups (metrics.usage, /metrics) sum them with one GROUP BY. Written by the
-- finisher in the same statement as the result. Cost is numeric (money is never a float): to the
-- millionth of a dollar, up to 99,999,999.999999.
ALTER TABLE "attempts"
  ADD COLUMN "input_tokens" INTEGER,
  ADD COLUMN "output_tokens" INTEGER,
  ADD COLUMN "cost_usd" NUMERIC(14, 6),
  ADD COLUMN "model" VARCHAR(100);

-- Results stored before these columns: their usage as reported, where it is a figure the columns can hold.
UPDATE "attempts" a SET
  "input_tokens" = CASE WHEN jsonb_typeof(u -> 'inputTokens') = 'number'
                         AND (u ->> 'inputTokens')::numeric BETWEEN 0 AND 2000000000
                        THEN round((u ->> 'inputTokens')::numeric)::integer END,
  "output_tokens" = CASE WHEN jsonb_typeof(u -> 'outputTokens') = 'number'
                          AND (u ->> 'outputTokens')::numeric BETWEEN 0 AND 2000000000
                         THEN round((u ->> 'outputTokens')::numeric)::integer END,
  "cost_usd" = CASE WHEN jsonb_typeof(u -> 'costUsd') = 'number'
                     AND (u ->> 'costUsd')::numeric BETWEEN 0 AND 1000000
                    THEN round((u ->> 'costUsd')::numeric, 6) END,
  "model" = CASE WHEN jsonb_typeof(u -> 'model') = 'string' AND length(u ->> 'model') BETWEEN 1 AND 100
                 THEN u ->> 'model' END
FROM (SELECT id, "result" -> 'usage' AS u FROM "attempts" WHERE jsonb_typeof("result" -> 'usage') = 'object') b
WHERE a.id = b.id;

-- The roll-ups read ended attempts that reported usage, by when they ended: a partial index holding every
-- column they group and sum (an index-only scan over a range of days), none of the attempts without usage.
CREATE INDEX "attempts_usage_finished_at_idx" ON "attempts" ("finished_at")
  INCLUDE ("worker_id", "model", "input_tokens", "output_tokens", "cost_usd")
  WHERE "finished_at" IS NOT NULL
    AND ("input_tokens" IS NOT NULL OR "output_tokens" IS NOT NULL OR "cost_usd" IS NOT NULL);

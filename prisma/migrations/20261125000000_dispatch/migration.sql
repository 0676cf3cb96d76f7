-- The critique the next attempt will carry (from the verdict that sent the task back to the queue).
-- The dispatcher moves it onto the new attempt when it claims the task.
ALTER TABLE "tasks" ADD COLUMN "next_critique" JSONB;

-- Attempts that failed or were lost since the task last entered the queue by hand or by verdict,
-- counted against the risk tier's attempt limit.
ALTER TABLE "tasks" ADD COLUMN "failures" INTEGER NOT NULL DEFAULT 0;

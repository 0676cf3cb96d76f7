-- How many times an attempt was re-attached after the process running it stopped (its lease expired):
-- the new process sends the same attempt to the same worker with the same Idempotency-Key. Past
-- RECOVERY_LIMIT the attempt is marked lost instead, so a crash loop ends. A graceful hand-back
-- (SIGTERM, lease released) does not count.
ALTER TABLE "attempts" ADD COLUMN "recoveries" INTEGER NOT NULL DEFAULT 0;

-- A task created by tasks.rerun from a finished task's spec (with edits) names that task here; the
-- original lists its reruns through the index. Deleting an original leaves its reruns standing.
ALTER TABLE "tasks" ADD COLUMN "rerun_of" UUID;
ALTER TABLE "tasks" ADD CONSTRAINT "tasks_rerun_of_fkey" FOREIGN KEY ("rerun_of") REFERENCES "tasks"("id") ON DELETE SET NULL ON UPDATE CASCADE;
CREATE INDEX "tasks_rerun_of_idx" ON "tasks"("rerun_of");

-- The task list's "Last updated" sort (updated_desc, updated_asc) reads this index in order, with seq
-- breaking ties, as the keyset cursor (updated_at, seq) does.
CREATE INDEX "tasks_updated_at_seq_idx" ON "tasks"("updated_at" DESC, "seq" DESC);

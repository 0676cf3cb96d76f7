-- Provenance becomes an append-only Merkle log (RFC 6962 hashing) with signed checkpoints
-- (C2SP tlog-checkpoint in the signed-note format) instead of a hash chain signed record by record.
--
-- Each record keeps its leaf hash. The last record of each committed batch also carries the tree's
-- right-edge frontier (the compact range: one subtree root per set bit of the size) and the signed
-- checkpoint for the tree ending at it, so an append stays a single INSERT (it runs as a CTE of the
-- callers' larger statements, where a second data-modifying statement cannot nest) and the next
-- appender reads the head's frontier with one index lookup instead of the log.
--
-- Records written before this migration keep their per-record signatures as history (prev_hash,
-- hash, signature, key_id; NULL from now on). Their leaf hashes, frontier and first checkpoint are
-- derived at the first start of the server (ProvenanceService.init), under the chain lock.
ALTER TABLE "provenance_records"
  ADD COLUMN "leaf_hash" CHAR(64),
  ADD COLUMN "frontier" TEXT,
  ADD COLUMN "checkpoint" TEXT,
  ADD COLUMN "checkpoint_key_id" VARCHAR(64),
  ALTER COLUMN "prev_hash" DROP NOT NULL,
  ALTER COLUMN "hash" DROP NOT NULL,
  ALTER COLUMN "signature" DROP NOT NULL,
  ALTER COLUMN "key_id" DROP NOT NULL;

-- The legacy chain's hashes are no longer looked up; the unique index only cost every insert.
DROP INDEX "provenance_records_hash_key";

-- The log is append-only: no DELETE, no TRUNCATE, and no UPDATE except the one-time derivation of a
-- legacy record's leaf hash (and, on the last such record, its frontier and checkpoint). A role that
-- owns the table can still disable these triggers: run the server as a role that does not (README).
CREATE FUNCTION "provenance_records_append_only"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND OLD.leaf_hash IS NULL AND NEW.seq = OLD.seq AND NEW.kind = OLD.kind
     AND NEW.task_id IS NOT DISTINCT FROM OLD.task_id AND NEW.payload = OLD.payload
     AND NEW.payload_digest = OLD.payload_digest AND NEW.created_at = OLD.created_at THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'provenance records are append-only (% refused)', TG_OP;
END;
$$;

CREATE TRIGGER "provenance_records_no_update_or_delete"
BEFORE UPDATE OR DELETE ON "provenance_records"
FOR EACH ROW EXECUTE FUNCTION "provenance_records_append_only"();

CREATE FUNCTION "refuse_truncate"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: TRUNCATE refused', TG_TABLE_NAME;
END;
$$;

CREATE TRIGGER "provenance_records_no_truncate"
BEFORE TRUNCATE ON "provenance_records"
FOR EACH STATEMENT EXECUTE FUNCTION "refuse_truncate"();

CREATE TRIGGER "audit_entries_no_truncate"
BEFORE TRUNCATE ON "audit_entries"
FOR EACH STATEMENT EXECUTE FUNCTION "refuse_truncate"();

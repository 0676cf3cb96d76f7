-- Several server processes on one database: a commit that writes task events or chat messages
-- notifies channel "agency_live" (delivered on commit, in commit order) with the schema, the kind
-- and the highest position it wrote. Listeners read the rows themselves, so the payload stays small
-- and a missed notification costs latency, never an event.
CREATE FUNCTION "agency_notify_task_events"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  top BIGINT;
BEGIN
  SELECT max("seq") INTO top FROM new_rows;
  IF top IS NOT NULL THEN
    PERFORM pg_notify('agency_live', json_build_object('s', TG_TABLE_SCHEMA, 'k', 'task_events', 'p', top::text)::text);
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER "task_events_notify"
AFTER INSERT ON "task_events" REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION "agency_notify_task_events"();

CREATE FUNCTION "agency_notify_chat_messages"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  top BIGINT;
BEGIN
  SELECT max("version") INTO top FROM new_rows;
  IF top IS NOT NULL THEN
    PERFORM pg_notify('agency_live', json_build_object('s', TG_TABLE_SCHEMA, 'k', 'chat', 'p', top::text)::text);
  END IF;
  RETURN NULL;
END $$;

-- A trigger with a transition table covers one event, hence one for inserts and one for updates.
CREATE TRIGGER "chat_messages_notify_insert"
AFTER INSERT ON "chat_messages" REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION "agency_notify_chat_messages"();

CREATE TRIGGER "chat_messages_notify_update"
AFTER UPDATE ON "chat_messages" REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION "agency_notify_chat_messages"();

-- The chat rate limit counts a user's messages of the last minute across every process.
CREATE INDEX "chat_messages_author_created_at_idx" ON "chat_messages"("author", "created_at");

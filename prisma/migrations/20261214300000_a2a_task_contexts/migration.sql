-- The A2A context a task was created in (issue #15, the agency as an A2A server): a client that names a
-- contextId in the message that creates a task gets it back on that task from tasks/get, the stream and
-- ListTasks, after a restart and on any process. A task created without one (or outside A2A) has no row:
-- its contextId is its own id. Tasks are never deleted, so no foreign key holds the row to its task.
CREATE TABLE "a2a_task_contexts" (
    "task_id" UUID NOT NULL,
    "context_id" VARCHAR(200) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "a2a_task_contexts_pkey" PRIMARY KEY ("task_id")
);

CREATE INDEX "a2a_task_contexts_context_id_created_at_idx" ON "a2a_task_contexts"("context_id", "created_at" DESC);

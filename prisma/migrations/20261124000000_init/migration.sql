
-- CreateEnum
CREATE TYPE "TaskState" AS ENUM ('queued', 'running', 'judging', 'accepted', 'changes_requested', 'rejected', 'failed', 'canceling', 'canceled');

-- CreateEnum
CREATE TYPE "TaskPriority" AS ENUM ('low', 'medium', 'high', 'critical');

-- CreateEnum
CREATE TYPE "TaskMode" AS ENUM ('feature', 'fix', 'refactor', 'chore');

-- CreateTable
CREATE TABLE "tasks" (
    "id" UUID NOT NULL,
    "seq" BIGSERIAL NOT NULL,
    "title" VARCHAR(200) NOT NULL,
    "description" VARCHAR(10000) NOT NULL,
    "priority" "TaskPriority" NOT NULL,
    "priority_rank" SMALLINT NOT NULL,
    "risk_tier" SMALLINT NOT NULL,
    "mode" "TaskMode" NOT NULL,
    "capability" VARCHAR(64) NOT NULL,
    "spec" JSONB NOT NULL,
    "state" "TaskState" NOT NULL DEFAULT 'queued',
    "attempt" INTEGER NOT NULL DEFAULT 0,
    "created_by" VARCHAR(128) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "state_reason" VARCHAR(2000),

    CONSTRAINT "tasks_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "task_events" (
    "seq" BIGSERIAL NOT NULL,
    "task_id" UUID NOT NULL,
    "type" VARCHAR(64) NOT NULL,
    "from_state" "TaskState",
    "to_state" "TaskState",
    "actor" VARCHAR(128) NOT NULL,
    "data" JSONB NOT NULL DEFAULT '{}',
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "task_events_pkey" PRIMARY KEY ("seq")
);

-- CreateTable
CREATE TABLE "saved_views" (
    "id" UUID NOT NULL,
    "owner" VARCHAR(128) NOT NULL,
    "name" VARCHAR(80) NOT NULL,
    "filter" JSONB NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "saved_views_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "tasks_seq_key" ON "tasks"("seq");

-- CreateIndex
CREATE INDEX "tasks_priority_rank_seq_idx" ON "tasks"("priority_rank" DESC, "seq" DESC);

-- CreateIndex
CREATE INDEX "tasks_state_seq_idx" ON "tasks"("state", "seq" DESC);

-- CreateIndex
CREATE INDEX "tasks_risk_tier_seq_idx" ON "tasks"("risk_tier", "seq" DESC);

-- CreateIndex
CREATE INDEX "tasks_created_at_idx" ON "tasks"("created_at");

-- CreateIndex
CREATE INDEX "task_events_task_id_seq_idx" ON "task_events"("task_id", "seq");

-- CreateIndex
CREATE UNIQUE INDEX "saved_views_owner_name_key" ON "saved_views"("owner", "name");

-- AddForeignKey
ALTER TABLE "task_events" ADD CONSTRAINT "task_events_task_id_fkey" FOREIGN KEY ("task_id") REFERENCES "tasks"("id") ON DELETE CASCADE ON UPDATE CASCADE;


-- Text search over title and description (ILIKE '%…%') is served by trigram indexes.
-- The extension lives in "public" so that every schema (one per test run) can use it.
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
CREATE INDEX "tasks_title_trgm_idx" ON "tasks" USING gin ("title" public.gin_trgm_ops);
CREATE INDEX "tasks_description_trgm_idx" ON "tasks" USING gin ("description" public.gin_trgm_ops);

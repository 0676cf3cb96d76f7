-- CreateEnum
CREATE TYPE "AttemptState" AS ENUM ('running', 'completed', 'failed', 'canceled', 'lost');

-- AlterTable
ALTER TABLE "tasks" ADD COLUMN     "cancel_confirmed" BOOLEAN,
ADD COLUMN     "cancel_reason" VARCHAR(500),
ADD COLUMN     "cancel_requested_at" TIMESTAMPTZ(3),
ADD COLUMN     "cancel_requested_by" VARCHAR(128),
ADD COLUMN     "queued_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
ADD COLUMN     "redispatches" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "waiting_reason" VARCHAR(500);

-- CreateTable
CREATE TABLE "attempts" (
    "id" UUID NOT NULL,
    "task_id" UUID NOT NULL,
    "number" INTEGER NOT NULL,
    "worker_id" UUID,
    "state" "AttemptState" NOT NULL DEFAULT 'running',
    "lease_owner" VARCHAR(100),
    "lease_expires_at" TIMESTAMPTZ(3),
    "queued_at" TIMESTAMPTZ(3) NOT NULL,
    "started_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finished_at" TIMESTAMPTZ(3),
    "tries" INTEGER NOT NULL DEFAULT 0,
    "error" VARCHAR(10000),
    "summary" VARCHAR(100000),
    "result" JSONB,
    "critique" JSONB,
    "verdict" VARCHAR(32),
    "judgement" JSONB,

    CONSTRAINT "attempts_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "artifacts" (
    "id" UUID NOT NULL,
    "attempt_id" UUID NOT NULL,
    "path" VARCHAR(1000) NOT NULL,
    "operation" VARCHAR(16) NOT NULL,
    "content" TEXT,
    "diff" TEXT,
    "lines_added" INTEGER NOT NULL DEFAULT 0,
    "lines_removed" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "artifacts_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "workers" (
    "id" UUID NOT NULL,
    "name" VARCHAR(100) NOT NULL,
    "url" VARCHAR(500) NOT NULL,
    "capabilities" TEXT[],
    "max_concurrency" INTEGER NOT NULL,
    "token" VARCHAR(500),
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    "source" VARCHAR(16) NOT NULL DEFAULT 'api',
    "tripped" BOOLEAN NOT NULL DEFAULT false,
    "health" VARCHAR(16) NOT NULL DEFAULT 'unknown',
    "health_checked_at" TIMESTAMPTZ(3),
    "last_error" VARCHAR(2000),
    "last_error_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "workers_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "attempts_state_lease_expires_at_idx" ON "attempts"("state", "lease_expires_at");

-- CreateIndex
CREATE INDEX "attempts_worker_id_state_idx" ON "attempts"("worker_id", "state");

-- CreateIndex
CREATE UNIQUE INDEX "attempts_task_id_number_key" ON "attempts"("task_id", "number");

-- CreateIndex
CREATE INDEX "artifacts_attempt_id_idx" ON "artifacts"("attempt_id");

-- CreateIndex
CREATE UNIQUE INDEX "workers_name_key" ON "workers"("name");

-- CreateIndex
CREATE INDEX "tasks_state_capability_priority_rank_queued_at_idx" ON "tasks"("state", "capability", "priority_rank" DESC, "queued_at");

-- AddForeignKey
ALTER TABLE "attempts" ADD CONSTRAINT "attempts_task_id_fkey" FOREIGN KEY ("task_id") REFERENCES "tasks"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "attempts" ADD CONSTRAINT "attempts_worker_id_fkey" FOREIGN KEY ("worker_id") REFERENCES "workers"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "artifacts" ADD CONSTRAINT "artifacts_attempt_id_fkey" FOREIGN KEY ("attempt_id") REFERENCES "attempts"("id") ON DELETE CASCADE ON UPDATE CASCADE;


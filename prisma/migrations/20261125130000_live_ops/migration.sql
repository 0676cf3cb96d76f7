-- CreateTable
CREATE TABLE "metric_rollups" (
    "minute" TIMESTAMPTZ(3) NOT NULL,
    "completed" INTEGER NOT NULL DEFAULT 0,
    "accepted" INTEGER NOT NULL DEFAULT 0,
    "changes_requested" INTEGER NOT NULL DEFAULT 0,
    "rejected" INTEGER NOT NULL DEFAULT 0,
    "failed" INTEGER NOT NULL DEFAULT 0,
    "canceled" INTEGER NOT NULL DEFAULT 0,
    "attempts_ended" INTEGER NOT NULL DEFAULT 0,
    "attempts_failed" INTEGER NOT NULL DEFAULT 0,
    "retries" INTEGER NOT NULL DEFAULT 0,
    "queue_wait_p50" DOUBLE PRECISION,
    "queue_wait_p95" DOUBLE PRECISION,
    "queue_wait_p99" DOUBLE PRECISION,
    "execution_p50" DOUBLE PRECISION,
    "execution_p95" DOUBLE PRECISION,
    "execution_p99" DOUBLE PRECISION,
    "queue_wait_count" INTEGER NOT NULL DEFAULT 0,
    "execution_count" INTEGER NOT NULL DEFAULT 0,
    "queue_wait_hist" TEXT,
    "execution_hist" TEXT,
    "queue_depth" INTEGER,
    "running" INTEGER,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "metric_rollups_pkey" PRIMARY KEY ("minute")
);

-- CreateTable
CREATE TABLE "chat_sessions" (
    "id" UUID NOT NULL,
    "title" VARCHAR(120) NOT NULL,
    "created_by" VARCHAR(128) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "ended_at" TIMESTAMPTZ(3),
    "ended_by" VARCHAR(128),

    CONSTRAINT "chat_sessions_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "chat_messages" (
    "seq" BIGSERIAL NOT NULL,
    "id" UUID NOT NULL,
    "session_id" UUID NOT NULL,
    "version" BIGSERIAL NOT NULL,
    "role" VARCHAR(16) NOT NULL,
    "author" VARCHAR(128) NOT NULL,
    "author_name" VARCHAR(128) NOT NULL,
    "content" VARCHAR(100000) NOT NULL,
    "client_id" VARCHAR(64),
    "status" VARCHAR(16) NOT NULL DEFAULT 'complete',
    "links" JSONB NOT NULL DEFAULT '[]',
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "chat_messages_pkey" PRIMARY KEY ("seq")
);

-- CreateIndex
CREATE INDEX "chat_sessions_updated_at_idx" ON "chat_sessions"("updated_at");

-- CreateIndex
CREATE UNIQUE INDEX "chat_messages_id_key" ON "chat_messages"("id");

-- CreateIndex
CREATE UNIQUE INDEX "chat_messages_version_key" ON "chat_messages"("version");

-- CreateIndex
CREATE INDEX "chat_messages_session_id_seq_idx" ON "chat_messages"("session_id", "seq");

-- CreateIndex
CREATE INDEX "chat_messages_session_id_version_idx" ON "chat_messages"("session_id", "version");

-- CreateIndex
CREATE UNIQUE INDEX "chat_messages_session_id_author_client_id_key" ON "chat_messages"("session_id", "author", "client_id");

-- AddForeignKey
ALTER TABLE "chat_messages" ADD CONSTRAINT "chat_messages_session_id_fkey" FOREIGN KEY ("session_id") REFERENCES "chat_sessions"("id") ON DELETE CASCADE ON UPDATE CASCADE;


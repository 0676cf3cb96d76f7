-- An accepting verdict on a task whose risk tier needs a person's approval holds the task here until
-- an operator (or an admin, by the tier's policy) approves or rejects it (APPROVAL_POLICY).
ALTER TYPE "TaskState" ADD VALUE IF NOT EXISTS 'awaiting_approval' AFTER 'running';

-- The W3C traceparent of the span that created the task (issue #15, OpenTelemetry traces): its claim,
-- attempts, tries, council and end are spans of that trace, from any process and after a restart.
-- Null when tracing was off at creation.
ALTER TABLE "tasks" ADD COLUMN "trace_parent" VARCHAR(55);

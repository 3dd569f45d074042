-- Traces from enqueue to execution (issue 15): the enqueuer's trace context (W3C
-- traceparent and tracestate, as OpenTelemetry's propagator writes them), so the
-- worker's span continues the trace. NULL when the enqueuer was not traced. Adding a
-- nullable column without a default rewrites nothing.
ALTER TABLE pgq.jobs ADD COLUMN trace_context jsonb;

COMMENT ON COLUMN pgq.jobs.trace_context IS 'The enqueuer''s trace context (W3C traceparent, tracestate) when it was traced; the worker''s span continues it.';

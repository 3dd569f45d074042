-- The HTTP API's wait and events endpoints: every change of a job's state or progress
-- is announced on the channel pgq_job_events, so a waiting client is woken at once
-- instead of polling. Also per-queue, per-state statistics so GET /queues can estimate
-- the counts of finished jobs without counting millions of rows.

-- Payload: {"id", "queue", "state", "attempt", "progress"}; "progress" is true when
-- the progress changed. Small and bounded (a queue name is at most 128 characters).
CREATE FUNCTION pgq.notify_job_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pgq_job_events', json_build_object(
        'id', NEW.id, 'queue', NEW.queue, 'state', NEW.state, 'attempt', NEW.attempt,
        'progress', OLD.progress IS DISTINCT FROM NEW.progress)::text);
    RETURN NULL;
END;
$$;

-- UPDATE OF and WHEN keep heartbeats and other updates free of any trigger call.
CREATE TRIGGER jobs_notify_changed
    AFTER UPDATE OF state, progress ON pgq.jobs
    FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.progress IS DISTINCT FROM NEW.progress)
    EXECUTE FUNCTION pgq.notify_job_changed();

-- ANALYZE keeps the most common (queue, state) pairs with their frequencies.
CREATE STATISTICS pgq.jobs_queue_state (mcv) ON queue, state FROM pgq.jobs;

-- Every timestamp of a job must be one Python can read back in any session time zone
-- (pgq/_times.py): a run_at of year 9999 at -14:00 broke every reader of the table.
-- Rows already out of range are moved to the nearest bound first (an 'infinity' run_at
-- never came due and still does not; a '-infinity' one was ready and still is).
CREATE FUNCTION pg_temp.clamp_time(t timestamptz) RETURNS timestamptz
LANGUAGE sql STRICT AS $$ SELECT least(greatest(t, '1970-01-01 00:00:00+00'), '9998-12-31 00:00:00+00') $$;

UPDATE pgq.jobs SET
    run_at = pg_temp.clamp_time(run_at),
    created_at = pg_temp.clamp_time(created_at),
    started_at = pg_temp.clamp_time(started_at),
    finished_at = pg_temp.clamp_time(finished_at),
    heartbeat_at = pg_temp.clamp_time(heartbeat_at),
    cancel_requested_at = pg_temp.clamp_time(cancel_requested_at)
WHERE NOT (
    run_at >= '1969-12-31 00:00:00+00' AND run_at < '9999-01-02 00:00:00+00'
    AND created_at >= '1969-12-31 00:00:00+00' AND created_at < '9999-01-02 00:00:00+00'
    AND coalesce(started_at >= '1969-12-31 00:00:00+00' AND started_at < '9999-01-02 00:00:00+00', true)
    AND coalesce(finished_at >= '1969-12-31 00:00:00+00' AND finished_at < '9999-01-02 00:00:00+00', true)
    AND coalesce(heartbeat_at >= '1969-12-31 00:00:00+00' AND heartbeat_at < '9999-01-02 00:00:00+00', true)
    AND coalesce(cancel_requested_at >= '1969-12-31 00:00:00+00'
                 AND cancel_requested_at < '9999-01-02 00:00:00+00', true));

ALTER TABLE pgq.jobs ADD CONSTRAINT jobs_times_in_range CHECK (
    run_at >= '1969-12-31 00:00:00+00' AND run_at < '9999-01-02 00:00:00+00'
    AND created_at >= '1969-12-31 00:00:00+00' AND created_at < '9999-01-02 00:00:00+00'
    AND coalesce(started_at >= '1969-12-31 00:00:00+00' AND started_at < '9999-01-02 00:00:00+00', true)
    AND coalesce(finished_at >= '1969-12-31 00:00:00+00' AND finished_at < '9999-01-02 00:00:00+00', true)
    AND coalesce(heartbeat_at >= '1969-12-31 00:00:00+00' AND heartbeat_at < '9999-01-02 00:00:00+00', true)
    AND coalesce(cancel_requested_at >= '1969-12-31 00:00:00+00'
                 AND cancel_requested_at < '9999-01-02 00:00:00+00', true));

-- A ready job has waited since it became ready: since its run_at, or since it was
-- created when run_at was given in the past (a run_at of 1970 is not 56 years of waiting).
CREATE OR REPLACE VIEW pgq.queue_stats AS
SELECT
    s.queue,
    s.state,
    s.jobs,
    s.oldest_queued_age,
    EXISTS (SELECT 1 FROM pgq.queues AS q WHERE q.queue = s.queue AND q.paused_at IS NOT NULL) AS paused
FROM (
    SELECT queue, state, count(*) AS jobs,
           CASE WHEN state = 'queued' THEN now() - min(greatest(run_at, created_at)) END AS oldest_queued_age
    FROM pgq.jobs
    GROUP BY queue, state
) AS s;

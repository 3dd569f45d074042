-- Job change notifications for the HTTP API's queue-wide streams (GET /events, /ws)
-- and for ordered per-job streams (GET /jobs/{id}/events).
--
-- Payload on pgq_job_events, one per changed row:
--   {"id", "queue", "task", "state", "attempt", "progress", "xid"[, "progress_value"]}
-- "progress" is true when the progress changed; "progress_value" is then the new value
-- (omitted only when it is larger than 7000 bytes: a reader reads the row instead).
-- "xid" is the writing transaction, so a reader can tell whether a row it read already
-- holds this change (pg_visible_in_snapshot). The text is built by concatenation,
-- several times faster than json_build_object: the CHECK constraints on queue and task
-- names and on state leave no character that JSON would need to escape.
CREATE OR REPLACE FUNCTION pgq.notify_job_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    progress_changed boolean := OLD.progress IS DISTINCT FROM NEW.progress;
    progress_text text := NEW.progress::text;
BEGIN
    PERFORM pg_notify('pgq_job_events',
        '{"id":' || NEW.id || ',"queue":"' || NEW.queue || '","task":"' || NEW.task
        || '","state":"' || NEW.state || '","attempt":' || NEW.attempt
        || ',"progress":' || progress_changed || ',"xid":' || pg_current_xact_id()
        || CASE
            WHEN NOT progress_changed OR octet_length(progress_text) > 7000 THEN ''
            ELSE ',"progress_value":' || coalesce(progress_text, 'null')
        END || '}');
    RETURN NULL;
END;
$$;

-- New jobs: one notification per row for statements of up to 100 rows (a job enqueued
-- through the API appears on the streams at once); a larger bulk insert sends one
-- {"queue", "inserted", "xid"} per queue instead, as per-row notifications would more
-- than double the cost of a bulk enqueue. Workers' pgq_jobs notification is unchanged.
CREATE OR REPLACE FUNCTION pgq.notify_jobs_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pgq_jobs', q.queue)
    FROM (SELECT DISTINCT queue FROM inserted) AS q;
    IF (SELECT count(*) FROM (SELECT 1 FROM inserted LIMIT 101) AS first) <= 100 THEN
        PERFORM pg_notify('pgq_job_events',
            '{"id":' || i.id || ',"queue":"' || i.queue || '","task":"' || i.task
            || '","state":"' || i.state || '","attempt":' || i.attempt
            || ',"progress":false,"xid":' || pg_current_xact_id() || '}')
        FROM inserted AS i;
    ELSE
        PERFORM pg_notify('pgq_job_events',
            '{"queue":"' || q.queue || '","inserted":' || q.n || ',"xid":' || pg_current_xact_id() || '}')
        FROM (SELECT queue, count(*) AS n FROM inserted GROUP BY queue) AS q;
    END IF;
    RETURN NULL;
END;
$$;

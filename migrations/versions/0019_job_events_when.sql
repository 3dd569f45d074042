-- The job-change trigger's WHEN reads only whether anyone watches (issue 16).
--
-- PostgreSQL plans a row trigger's WHEN again for every statement that updates the
-- table. jobs_notify_changed's compared the old row's state and progress with the new
-- ones as well as reading the setting: about 40,000 instructions per statement, 4.0 % of
-- a claim and its outcome one job per statement and 1.9 % ten at a time, whether or not
-- anyone watched (callgrind; benchmarks/README.md, What limits the hot path). The
-- comparison moves into pgq.notify_job_changed, which runs only while someone watches.

CREATE OR REPLACE FUNCTION pgq.notify_job_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    progress_changed boolean := OLD.progress IS DISTINCT FROM NEW.progress;
    progress_text text;
BEGIN
    -- The trigger's WHEN asks only whether anyone watches (comparing the old row with
    -- the new there was planned again for every statement): a row whose state and
    -- progress stayed as they were ends here.
    IF NOT progress_changed AND OLD.state IS NOT DISTINCT FROM NEW.state THEN
        RETURN NULL;
    END IF;
    progress_text := NEW.progress::text;
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

DROP TRIGGER jobs_notify_changed ON pgq.jobs;
CREATE TRIGGER jobs_notify_changed
    AFTER UPDATE OF state, progress ON pgq.jobs
    FOR EACH ROW
    WHEN (current_setting('pgq.job_events_watched', true) = 'on')
    EXECUTE FUNCTION pgq.notify_job_changed();

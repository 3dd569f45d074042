-- Job change notifications only while someone watches them (issue 16).
--
-- Every claim, completion and progress write sent one notification per job on
-- pgq_job_events (for the HTTP API's wait and streams, and app.wait) whether or not any
-- of them was running: 13-19 % of the claim and completion statements. Now a session
-- that LISTENs on pgq_job_events registers in pgq.job_event_watchers (with
-- pgq.watch_job_events(), in the transaction of its LISTEN), and the per-row trigger
-- runs only while a watcher is registered. Without one, an UPDATE of state or progress
-- costs one lookup per statement (jobs_watch_check) and a setting read per row.
--
-- No change is lost to the handshake: every statement that changes a job's state or
-- progress takes a shared advisory lock before it looks for watchers, and a registration
-- takes the same lock exclusively before it commits. So a transaction that found no
-- watcher commits before the registration does (and the watcher's first read, made
-- after it, sees the change), and one that looks after the registration notifies.
-- New jobs (the insert trigger) are still always announced: enqueues run in callers'
-- transactions, which a registration must never wait for.
CREATE TABLE pgq.job_event_watchers (
    pid   integer     PRIMARY KEY,
    since timestamptz NOT NULL DEFAULT now()
);

-- Register this session (the one that LISTENs) as a watcher; drop the rows of sessions
-- that are gone (a watcher that died without a word only costs notifications).
CREATE FUNCTION pgq.watch_job_events() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM pgq.job_event_watchers AS w
    WHERE NOT EXISTS (SELECT FROM pg_stat_activity AS a WHERE a.pid = w.pid);
    INSERT INTO pgq.job_event_watchers (pid) VALUES (pg_backend_pid())
    ON CONFLICT (pid) DO UPDATE SET since = now();
    -- Wait for the transactions that already looked and found no watcher.
    PERFORM pg_advisory_xact_lock(1886483816, 2);
END;
$$;

-- Before each statement that may change a state or a progress: is anyone watching?
-- The answer holds for the statement's rows (pgq.job_events_watched, transaction-local).
CREATE FUNCTION pgq.check_job_watchers() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(1886483816, 2);
    PERFORM set_config('pgq.job_events_watched',
        CASE WHEN EXISTS (SELECT FROM pgq.job_event_watchers) THEN 'on' ELSE 'off' END, true);
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_watch_check
    BEFORE UPDATE OF state, progress ON pgq.jobs
    FOR EACH STATEMENT EXECUTE FUNCTION pgq.check_job_watchers();

DROP TRIGGER jobs_notify_changed ON pgq.jobs;

-- The same per-row notification as before (pgq.notify_job_changed, migration 0012),
-- now only while watched.
CREATE TRIGGER jobs_notify_changed
    AFTER UPDATE OF state, progress ON pgq.jobs
    FOR EACH ROW
    WHEN ((OLD.state IS DISTINCT FROM NEW.state OR OLD.progress IS DISTINCT FROM NEW.progress)
          AND current_setting('pgq.job_events_watched', true) = 'on')
    EXECUTE FUNCTION pgq.notify_job_changed();

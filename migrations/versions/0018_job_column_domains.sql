-- The single-column CHECK constraints of pgq.jobs become domains (issue 16).
--
-- PostgreSQL reads every CHECK constraint of a table back from its stored text and plans
-- it again for each statement that writes to the table, before the first row: a claim,
-- an outcome batch and a one-job INSERT each prepared all twelve of pgq.jobs'. A
-- domain's constraint is planned once per session (PostgreSQL's type cache) and checked
-- only when a value is written to a column of that type, so an UPDATE of a job's state
-- checks the state and not the queue's name. The checks are the same and keep their
-- names: a violation is still a check_violation naming the constraint (the message
-- names the domain, not the table). The four checks that tie columns together stay on
-- the table. Counted with callgrind (the backend's instructions per job, before → after
-- on the same statements): enqueue one job per INSERT 0.53, claim and record one job per
-- statement 0.69, ten per statement 0.83, COPY 0.96.
--
-- Nothing is rewritten: the columns change to domains without constraints first (the
-- same base type, so the rows and indexes stay as they are), then each domain gets its
-- constraint, which reads the rows once to check them. The views over pgq.jobs and the
-- triggers that name its columns are made again around the change, with the views'
-- grants (PostgreSQL refuses to change the type of a column they use).

CREATE DOMAIN pgq.job_queue AS text;
CREATE DOMAIN pgq.job_task AS text;
CREATE DOMAIN pgq.job_args AS jsonb;
CREATE DOMAIN pgq.job_state AS text;
CREATE DOMAIN pgq.job_errors AS jsonb;
CREATE DOMAIN pgq.job_idempotency_key AS text;
CREATE DOMAIN pgq.job_progress AS jsonb;
CREATE DOMAIN pgq.job_time AS timestamptz;

CREATE TEMP TABLE pgq_view_grants ON COMMIT DROP AS
SELECT c.relname, a.privilege_type, a.grantee, a.is_grantable
FROM pg_class AS c, aclexplode(c.relacl) AS a
WHERE c.relnamespace = 'pgq'::regnamespace AND c.relname IN ('queue_stats', 'workflow_status')
  AND a.grantee <> c.relowner;

DROP VIEW pgq.queue_stats;
DROP VIEW pgq.workflow_status;
DROP TRIGGER jobs_watch_check ON pgq.jobs;
DROP TRIGGER jobs_notify_changed ON pgq.jobs;
DROP TRIGGER jobs_settle_dependents ON pgq.jobs;

ALTER TABLE pgq.jobs
    DROP CONSTRAINT jobs_state_valid,
    DROP CONSTRAINT jobs_queue_valid,
    DROP CONSTRAINT jobs_task_valid,
    DROP CONSTRAINT jobs_args_is_object,
    DROP CONSTRAINT jobs_errors_is_array,
    DROP CONSTRAINT jobs_idempotency_key_valid,
    DROP CONSTRAINT jobs_progress_is_object,
    DROP CONSTRAINT jobs_times_in_range,
    ALTER COLUMN queue TYPE pgq.job_queue,
    ALTER COLUMN task TYPE pgq.job_task,
    ALTER COLUMN args TYPE pgq.job_args,
    ALTER COLUMN state TYPE pgq.job_state,
    ALTER COLUMN errors TYPE pgq.job_errors,
    ALTER COLUMN idempotency_key TYPE pgq.job_idempotency_key,
    ALTER COLUMN progress TYPE pgq.job_progress,
    ALTER COLUMN run_at TYPE pgq.job_time,
    ALTER COLUMN created_at TYPE pgq.job_time,
    ALTER COLUMN started_at TYPE pgq.job_time,
    ALTER COLUMN finished_at TYPE pgq.job_time,
    ALTER COLUMN heartbeat_at TYPE pgq.job_time,
    ALTER COLUMN cancel_requested_at TYPE pgq.job_time;

-- Names: a length test plus an unbounded character class (a bounded regex such as
-- {1,128} accepts the same names but is several times slower).
ALTER DOMAIN pgq.job_queue ADD CONSTRAINT jobs_queue_valid
    CHECK (length(VALUE) BETWEEN 1 AND 128 AND VALUE ~ '^[A-Za-z0-9_.:-]+$');
ALTER DOMAIN pgq.job_task ADD CONSTRAINT jobs_task_valid
    CHECK (length(VALUE) BETWEEN 1 AND 255 AND VALUE ~ '^[A-Za-z_][A-Za-z0-9_.:-]*$');
ALTER DOMAIN pgq.job_args ADD CONSTRAINT jobs_args_is_object CHECK (jsonb_typeof(VALUE) = 'object');
-- Only a job with parents waits: the writers of 'waiting' (pgq.enqueue_dependent,
-- pgq.settle_dependents, the retries) see to it (migration 0017).
ALTER DOMAIN pgq.job_state ADD CONSTRAINT jobs_state_valid CHECK (
    VALUE IN ('waiting', 'scheduled', 'queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled'));
ALTER DOMAIN pgq.job_errors ADD CONSTRAINT jobs_errors_is_array CHECK (jsonb_typeof(VALUE) = 'array');
ALTER DOMAIN pgq.job_idempotency_key ADD CONSTRAINT jobs_idempotency_key_valid
    CHECK (length(VALUE) BETWEEN 1 AND 255);
ALTER DOMAIN pgq.job_progress ADD CONSTRAINT jobs_progress_is_object CHECK (jsonb_typeof(VALUE) = 'object');
-- Every time within what Python reads back in any session time zone (pgq/_times.py).
ALTER DOMAIN pgq.job_time ADD CONSTRAINT jobs_times_in_range
    CHECK (VALUE >= '1969-12-31 00:00:00+00' AND VALUE < '9999-01-02 00:00:00+00');

CREATE TRIGGER jobs_watch_check
    BEFORE UPDATE OF state, progress ON pgq.jobs
    FOR EACH STATEMENT EXECUTE FUNCTION pgq.check_job_watchers();

CREATE TRIGGER jobs_notify_changed
    AFTER UPDATE OF state, progress ON pgq.jobs
    FOR EACH ROW
    WHEN ((OLD.state IS DISTINCT FROM NEW.state OR OLD.progress IS DISTINCT FROM NEW.progress)
          AND current_setting('pgq.job_events_watched', true) = 'on')
    EXECUTE FUNCTION pgq.notify_job_changed();

CREATE TRIGGER jobs_settle_dependents
    AFTER UPDATE OF state ON pgq.jobs
    FOR EACH ROW
    WHEN (NEW.has_dependents)
    EXECUTE FUNCTION pgq.settle_dependents();

CREATE VIEW pgq.queue_stats AS
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

COMMENT ON VIEW pgq.queue_stats IS 'Job counts per queue and state, with the age of the oldest ready job and whether the queue is paused.';

CREATE VIEW pgq.workflow_status AS
SELECT
    w.id,
    w.name,
    w.created_at,
    CASE
        WHEN count(j.id) FILTER (WHERE j.finished_at IS NULL) > 0 THEN 'running'
        WHEN count(j.id) FILTER (WHERE j.state <> 'succeeded') = 0 THEN 'succeeded'
        WHEN count(j.id) FILTER (WHERE j.state = 'failed') > 0 THEN 'failed'
        ELSE 'cancelled' END AS state,
    count(j.id) AS steps,
    count(j.id) FILTER (WHERE j.state = 'waiting') AS waiting,
    count(j.id) FILTER (WHERE j.state IN ('scheduled', 'queued')) AS queued,
    count(j.id) FILTER (WHERE j.state IN ('running', 'retrying')) AS running,
    count(j.id) FILTER (WHERE j.state = 'succeeded') AS succeeded,
    count(j.id) FILTER (WHERE j.state = 'failed') AS failed,
    count(j.id) FILTER (WHERE j.state = 'cancelled') AS cancelled,
    CASE WHEN count(j.id) FILTER (WHERE j.finished_at IS NULL) = 0 THEN max(j.finished_at) END AS finished_at
FROM pgq.workflows AS w
LEFT JOIN pgq.jobs AS j ON j.workflow_id = w.id
GROUP BY w.id;

COMMENT ON VIEW pgq.workflow_status IS 'Workflows with their steps counted by state; state is running until every step is final.';

DO $$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT * FROM pgq_view_grants LOOP
        EXECUTE format('GRANT %s ON pgq.%I TO %s%s', g.privilege_type, g.relname,
            CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END,
            CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
END
$$;

-- Least-privilege roles for pgq, applied by `pgq roles` (run it as the owner of the
-- pgq schema, after `pgq migrate`; safe to run again after each migration).
-- They are NOLOGIN group roles: grant them to your login roles, for example
--   GRANT pgq_worker TO billing_worker;
--
--   pgq_producer  enqueue jobs and read them (the application's web processes)
--   pgq_worker    claim, run, record and maintain jobs; no DDL
--   pgq_reader    read everything pgq stores (dashboards, the HTTP API's reads)

DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['pgq_producer', 'pgq_worker', 'pgq_reader'] LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', name);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- roles are shared by the whole server: another database made it
        END;
    END LOOP;
END
$$;

GRANT USAGE ON SCHEMA pgq TO pgq_producer, pgq_worker, pgq_reader;

GRANT SELECT ON pgq.jobs, pgq.workers, pgq.leases, pgq.queues, pgq.schedules, pgq.queue_stats,
    pgq.alembic_version TO pgq_reader;

GRANT SELECT, INSERT ON pgq.jobs TO pgq_producer;
GRANT SELECT ON pgq.queue_stats, pgq.alembic_version TO pgq_producer;

GRANT SELECT, INSERT, UPDATE, DELETE ON pgq.jobs, pgq.workers, pgq.leases, pgq.schedules TO pgq_worker;
GRANT SELECT ON pgq.queue_stats, pgq.alembic_version TO pgq_worker;
-- Whether anyone watches job changes (migration 0015): read by every UPDATE of a job's state.
GRANT SELECT ON pgq.job_event_watchers TO pgq_producer, pgq_worker, pgq_reader;
-- Claiming locks and updates the limit rows of limited queues; setting limits is the owner's.
GRANT SELECT, UPDATE ON pgq.queues TO pgq_worker;
-- Enqueueing from SQL (migration 0013): the same right as INSERT on pgq.jobs.
GRANT EXECUTE ON FUNCTION pgq.enqueue(text, jsonb, text, bigint, timestamptz, interval, bigint, text)
    TO pgq_producer, pgq_worker;
-- Bulk enqueue (enqueue_many's COPY) takes its ids from the sequence first.
GRANT USAGE ON SEQUENCE pgq.jobs_id_seq TO pgq_producer, pgq_worker;
-- Workflows (migration 0014): pgq.enqueue_dependent writes steps and edges as the schema's
-- owner; the worker settles dependents when it finishes a parent, and cancels workflows.
GRANT SELECT ON pgq.workflows, pgq.job_parents, pgq.job_waits, pgq.workflow_status
    TO pgq_reader, pgq_producer, pgq_worker;
GRANT DELETE ON pgq.workflows, pgq.job_parents TO pgq_worker;
GRANT UPDATE, DELETE ON pgq.job_waits TO pgq_worker;
GRANT EXECUTE ON FUNCTION pgq.enqueue_dependent(text, jsonb, integer[], integer[], bigint[], boolean[])
    TO pgq_producer, pgq_worker;

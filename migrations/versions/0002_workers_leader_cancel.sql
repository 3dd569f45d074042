-- Reliability: live workers, a leader lease for maintenance, cancellation requests
-- for running jobs, and live progress on the job row.

CREATE TABLE pgq.workers (
    id           text        PRIMARY KEY,
    host         text        NOT NULL,
    pid          integer     NOT NULL,
    queues       text[]      NOT NULL,
    concurrency  integer     NOT NULL CHECK (concurrency >= 1),
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE pgq.workers IS 'One row per live worker process, refreshed by its heartbeat; stale rows are removed by the leader.';

-- At most one row per name: the worker holding an unexpired lease runs that
-- maintenance. A lease (not an advisory lock) survives PgBouncer transaction pooling.
CREATE TABLE pgq.leases (
    name       text        PRIMARY KEY,
    worker_id  text        NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

COMMENT ON TABLE pgq.leases IS 'Leader election: the worker named here runs maintenance until expires_at.';

ALTER TABLE pgq.jobs
    ADD COLUMN cancel_requested_at timestamptz,
    ADD COLUMN progress jsonb,
    ADD CONSTRAINT jobs_progress_is_object CHECK (progress IS NULL OR jsonb_typeof(progress) = 'object');

COMMENT ON COLUMN pgq.jobs.cancel_requested_at IS 'Set by cancel() on a running job; its worker stops it and records cancelled.';
COMMENT ON COLUMN pgq.jobs.progress IS 'Latest progress a running task reported: {"percent", "message", "at"}.';

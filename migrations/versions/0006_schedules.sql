-- Periodic jobs: one row per schedule, written by workers at start, advanced by the
-- leader each time it enqueues a run.

CREATE TABLE pgq.schedules (
    name          text        PRIMARY KEY,
    task          text        NOT NULL,
    queue         text        NOT NULL DEFAULT 'default',
    args          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    priority      smallint    NOT NULL DEFAULT 0,
    max_attempts  integer     NOT NULL DEFAULT 5,
    cron          text,
    every_seconds integer,
    timezone      text        NOT NULL DEFAULT 'UTC',
    missed        text        NOT NULL DEFAULT 'run_once',
    next_run_at   timestamptz NOT NULL,
    last_run_at   timestamptz,
    last_job_id   bigint,
    updated_at    timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT schedules_name_valid CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_.:-]{0,199}$'),
    CONSTRAINT schedules_task_valid CHECK (task ~ '^[A-Za-z_][A-Za-z0-9_.:-]{0,254}$'),
    CONSTRAINT schedules_queue_valid CHECK (queue ~ '^[A-Za-z0-9_.:-]{1,128}$'),
    CONSTRAINT schedules_args_is_object CHECK (jsonb_typeof(args) = 'object'),
    CONSTRAINT schedules_max_attempts_valid CHECK (max_attempts >= 1),
    -- Exactly one way of repeating: a cron expression or a number of seconds.
    CONSTRAINT schedules_cron_xor_every CHECK ((cron IS NULL) <> (every_seconds IS NULL)),
    CONSTRAINT schedules_every_positive CHECK (every_seconds IS NULL OR every_seconds >= 1),
    CONSTRAINT schedules_missed_valid CHECK (missed IN ('run_once', 'skip'))
);

COMMENT ON TABLE pgq.schedules IS 'Periodic jobs: the leader enqueues task when next_run_at comes, then advances it.';
COMMENT ON COLUMN pgq.schedules.next_run_at IS 'The next tick (UTC); the run enqueued for it has run_at = this tick.';
COMMENT ON COLUMN pgq.schedules.last_run_at IS 'The tick of the last run enqueued; last_job_id is its job.';
COMMENT ON COLUMN pgq.schedules.missed IS 'After downtime: run_once (one catch-up run for the latest missed tick) or skip.';

-- Per-queue limits that hold across all workers, enforced inside the claim.

CREATE TABLE pgq.queues (
    queue         text        PRIMARY KEY,
    max_running   integer,
    rate_limit    integer,
    rate_period   interval,
    -- Start times within the last rate_period: a sliding window, so no interval of
    -- that length ever holds more than rate_limit starts.
    recent_starts timestamptz[] NOT NULL DEFAULT '{}',
    updated_at    timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT queues_queue_valid CHECK (queue ~ '^[A-Za-z0-9_.:-]{1,128}$'),
    CONSTRAINT queues_max_running_valid CHECK (max_running IS NULL OR max_running >= 1),
    CONSTRAINT queues_rate_valid CHECK (
        (rate_limit IS NULL AND rate_period IS NULL)
        OR (rate_limit BETWEEN 1 AND 10000 AND rate_period > interval '0'))
);

COMMENT ON TABLE pgq.queues IS 'Per-queue limits: at most max_running jobs running, at most rate_limit starts per rate_period. Change at runtime.';

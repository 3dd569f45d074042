-- Performance: the queue and task name CHECKs used bounded repetition ({1,128},
-- {0,254}), which PostgreSQL's regex engine runs several times slower than an
-- unbounded class plus a length test. Every INSERT and every UPDATE of a job row
-- evaluates them, so they cost about two thirds of a bulk COPY's server time. The
-- accepted names are exactly the same. Re-adding a CHECK scans the table once.

ALTER TABLE pgq.jobs
    DROP CONSTRAINT jobs_queue_valid,
    DROP CONSTRAINT jobs_task_valid,
    ADD CONSTRAINT jobs_queue_valid CHECK (length(queue) BETWEEN 1 AND 128 AND queue ~ '^[A-Za-z0-9_.:-]+$'),
    ADD CONSTRAINT jobs_task_valid CHECK (length(task) BETWEEN 1 AND 255 AND task ~ '^[A-Za-z_][A-Za-z0-9_.:-]*$');

-- Every statement pgq runs, by name. Names are entity first, then verb.
-- Each query starts with "-- name: <name>" and a line saying what it is for.
-- Parameters are psycopg named placeholders; nothing is ever formatted into the text.

-- name: job_insert
-- Enqueue one job. A future run_at (or delay) makes it 'scheduled', otherwise 'queued'.
-- With an idempotency key that a non-final job already holds, inserts nothing.
INSERT INTO pgq.jobs AS j (queue, task, args, state, priority, run_at, max_attempts, idempotency_key)
SELECT %(queue)s, %(task)s, %(args)s, CASE WHEN t.run_at > now() THEN 'scheduled' ELSE 'queued' END,
       %(priority)s, t.run_at, %(max_attempts)s, %(idempotency_key)s
FROM (SELECT coalesce(%(run_at)s::timestamptz, now() + %(delay)s::interval, now()) AS run_at) AS t
ON CONFLICT (idempotency_key)
    WHERE idempotency_key IS NOT NULL AND state IN ('scheduled', 'queued', 'running', 'retrying')
    DO NOTHING
RETURNING j.id, j.state, j.run_at, j.created_at;

-- name: job_ids_reserve
-- Take %(n)s ids for a bulk COPY, in ascending order, with the transaction's now()
-- that becomes their created_at and run_at.
SELECT now() AS now,
       array(SELECT nextval(pg_get_serial_sequence('pgq.jobs', 'id')) FROM generate_series(1, %(n)s)) AS ids;

-- name: job_copy
-- Bulk enqueue fast path for jobs that are ready now and have no idempotency key:
-- rows (with ids from job_ids_reserve) streamed in binary. COPY fires the insert
-- trigger like INSERT does: one NOTIFY per queue.
COPY pgq.jobs (id, queue, task, args, priority, run_at, max_attempts, created_at) FROM STDIN (FORMAT BINARY);

-- name: job_insert_many
-- Bulk enqueue of batches with idempotency keys or run times (job_copy takes the rest):
-- %(jobs)s is a JSON array of objects with the job_insert fields, one statement for
-- all of them. Rows come back in input order of the inserted ones.
INSERT INTO pgq.jobs AS j (queue, task, args, state, priority, run_at, max_attempts, idempotency_key)
SELECT s.queue, s.task, s.args, CASE WHEN s.run_at > now() THEN 'scheduled' ELSE 'queued' END,
       s.priority, s.run_at, s.max_attempts, s.idempotency_key
FROM (
    SELECT r.queue, r.task, r.args, r.priority, r.max_attempts, r.idempotency_key, r.ord,
           coalesce(r.run_at, now() + r.delay, now()) AS run_at
    FROM jsonb_to_recordset(%(jobs)s::jsonb) AS r(
        ord integer, queue text, task text, args jsonb, priority smallint, run_at timestamptz,
        delay interval, max_attempts integer, idempotency_key text)
) AS s
ORDER BY s.ord
ON CONFLICT (idempotency_key)
    WHERE idempotency_key IS NOT NULL AND state IN ('scheduled', 'queued', 'running', 'retrying')
    DO NOTHING
RETURNING j.*;

-- name: job_get_active_by_idempotency_keys
-- The non-final jobs holding these idempotency keys (what a repeated enqueue returns).
SELECT * FROM pgq.jobs
WHERE idempotency_key = ANY(%(keys)s::text[])
  AND state IN ('scheduled', 'queued', 'running', 'retrying');

-- name: job_get
-- One job by id.
SELECT * FROM pgq.jobs WHERE id = %(id)s;

-- name: job_list
-- Newest jobs first, optionally filtered; keyset pagination with before_id.
SELECT * FROM pgq.jobs
WHERE (%(queue)s::text IS NULL OR queue = %(queue)s)
  AND (%(state)s::text IS NULL OR state = %(state)s)
  AND (%(task)s::text IS NULL OR task = %(task)s)
  AND (%(before_id)s::bigint IS NULL OR id < %(before_id)s)
ORDER BY id DESC
LIMIT %(limit)s;

-- name: job_promote_due
-- Move scheduled and retrying jobs whose run_at has come to 'queued', and wake the
-- workers of their queues. SKIP LOCKED lets several workers do this at once.
WITH due AS (
    UPDATE pgq.jobs SET state = 'queued'
    WHERE id IN (
        SELECT id FROM pgq.jobs
        WHERE state IN ('scheduled', 'retrying') AND run_at <= now()
        ORDER BY run_at
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED)
    RETURNING queue
)
SELECT q.queue, pg_notify('pgq_jobs', q.queue) IS NULL AS notified
FROM (SELECT DISTINCT queue FROM due) AS q;

-- name: job_next_due_in
-- Seconds, by the database clock, until the next scheduled or retrying job of these
-- queues becomes due (NULL: none).
SELECT extract(epoch FROM min(run_at) - now())::float8 AS seconds FROM pgq.jobs
WHERE state IN ('scheduled', 'retrying') AND queue = ANY(%(queues)s::text[]);

-- name: job_claim
-- Claim up to %(limit)s ready jobs from these queues for one worker: best priority
-- (lowest number) first, then oldest run_at, then id. The attempt is counted here, at
-- claim, so a job that kills its worker cannot loop forever.
WITH candidates AS (
    -- One ordered index scan per queue, skipping rows other workers are claiming.
    SELECT c.id, c.priority, c.run_at
    FROM unnest(%(queues)s::text[]) AS q(name)
    CROSS JOIN LATERAL (
        SELECT id, priority, run_at FROM pgq.jobs
        WHERE state = 'queued' AND queue = q.name
        ORDER BY priority, run_at, id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) AS c
    ORDER BY c.priority, c.run_at, c.id
    LIMIT %(limit)s
)
UPDATE pgq.jobs AS j
SET state = 'running', attempt = j.attempt + 1, started_at = now(), heartbeat_at = now(),
    worker_id = %(worker_id)s
FROM candidates
WHERE j.id = candidates.id
RETURNING j.*;

-- name: job_set_succeeded
-- Record a result, only for the same attempt still running on this worker.
UPDATE pgq.jobs
SET state = 'succeeded', result = %(result)s, finished_at = now(), heartbeat_at = NULL
WHERE id = %(id)s AND state = 'running' AND attempt = %(attempt)s AND worker_id = %(worker_id)s
RETURNING id;

-- name: job_set_failed
-- A failed attempt: back to 'retrying' at run_at = now() + delay, or 'failed' when
-- %(retry_in)s is NULL. The error entry is appended; guarded like job_set_succeeded.
UPDATE pgq.jobs
SET state = CASE WHEN %(retry_in)s::interval IS NULL THEN 'failed' ELSE 'retrying' END,
    run_at = CASE WHEN %(retry_in)s::interval IS NULL THEN run_at ELSE now() + %(retry_in)s::interval END,
    finished_at = CASE WHEN %(retry_in)s::interval IS NULL THEN now() END,
    heartbeat_at = NULL,
    worker_id = NULL,
    errors = errors || jsonb_build_array(
        jsonb_build_object('attempt', attempt, 'at', now()) || %(error)s::jsonb)
WHERE id = %(id)s AND state = 'running' AND attempt = %(attempt)s AND worker_id = %(worker_id)s
RETURNING id, state;

-- name: job_requeue_unfinished
-- A worker shutting down hands its unfinished jobs back and wakes the other workers.
-- The interrupted attempt is not counted, so a deploy never uses up a job's attempts.
WITH requeued AS (
    UPDATE pgq.jobs
    SET state = 'queued', attempt = attempt - 1, started_at = NULL, heartbeat_at = NULL, worker_id = NULL
    WHERE id = ANY(%(ids)s::bigint[]) AND state = 'running' AND worker_id = %(worker_id)s
    RETURNING id, queue
)
SELECT id, pg_notify('pgq_jobs', queue) IS NULL AS notified FROM requeued;

-- name: job_heartbeat
-- Tell the world this worker still runs these jobs (the rescuer reads heartbeat_at).
UPDATE pgq.jobs SET heartbeat_at = now()
WHERE id = ANY(%(ids)s::bigint[]) AND state = 'running' AND worker_id = %(worker_id)s;

-- name: job_cancel
-- Cancel a job that has not started (or is waiting for a retry). Running and final
-- jobs are left alone; the caller reads the row to say why.
UPDATE pgq.jobs
SET state = 'cancelled', finished_at = now()
WHERE id = %(id)s AND state IN ('scheduled', 'queued', 'retrying')
RETURNING *;

-- name: job_retry
-- Put a failed or cancelled job back in the queue now, with at least one attempt left.
UPDATE pgq.jobs
SET state = 'queued', run_at = now(), finished_at = NULL,
    max_attempts = greatest(max_attempts, attempt + 1)
WHERE id = %(id)s AND state IN ('failed', 'cancelled')
RETURNING *;

-- name: job_notify_queue
-- Wake the workers of one queue (after a job was put back by retry).
SELECT pg_notify('pgq_jobs', %(queue)s);

-- name: queue_stats_list
-- The pgq.queue_stats view, for the CLI.
SELECT queue, state, jobs, oldest_queued_age FROM pgq.queue_stats ORDER BY queue, state;

-- name: schema_version_get
-- The alembic revision the database is at (raises if pgq was never migrated).
SELECT version_num FROM pgq.alembic_version;

-- name: worker_listen
-- Subscribe to job notifications; the payload of each is a queue name.
LISTEN pgq_jobs;

-- name: migration_lock
-- Serialises `pgq migrate` across processes: the second waits, then finds nothing to do.
SELECT pg_advisory_lock(hashtext('pgq.migrate'));

-- name: migration_unlock
-- Releases migration_lock.
SELECT pg_advisory_unlock(hashtext('pgq.migrate'));

-- name: schema_create
-- The pgq schema must exist before alembic writes its version table into it.
CREATE SCHEMA IF NOT EXISTS pgq;

-- name: bench_database_create
-- `pgq bench` and benchmarks/peers.py: a database of their own. {name} is filled in
-- with psycopg.sql.Identifier, never formatted from a string.
CREATE DATABASE {name};

-- name: bench_database_drop
-- Drop a bench database at the end, even if a connection to it was left behind.
DROP DATABASE IF EXISTS {name} WITH (FORCE);

-- name: bench_database_exists
-- Whether a database of this name exists (tests check that the bench dropped its own).
SELECT EXISTS (SELECT FROM pg_database WHERE datname = %(name)s);

-- name: bench_server_settings
-- What bench results depend on: server version and durability settings.
SELECT version() AS version, current_setting('fsync') AS fsync,
       current_setting('synchronous_commit') AS synchronous_commit,
       current_setting('shared_buffers') AS shared_buffers;

-- name: bench_jobs_reset
-- Empty the jobs table between bench workloads, so each starts from the same state.
TRUNCATE pgq.jobs;

-- name: bench_raw_insert
-- Raw ceiling for enqueue one-per-call: the barest INSERT of one job, nothing returned.
INSERT INTO pgq.jobs (task, args) VALUES (%(task)s, %(args)s);

-- name: bench_raw_copy
-- Raw ceiling for bulk enqueue: binary COPY of task and args, every other column defaulted.
COPY pgq.jobs (task, args) FROM STDIN (FORMAT BINARY);

-- name: bench_raw_claim
-- Raw ceiling for the drain: claim up to %(limit)s ready jobs of the default queue, in
-- claim order, skipping rows other loops hold.
UPDATE pgq.jobs
SET state = 'running', attempt = attempt + 1, started_at = now(), heartbeat_at = now(), worker_id = %(worker_id)s
WHERE id IN (
    SELECT id FROM pgq.jobs
    WHERE state = 'queued' AND queue = 'default'
    ORDER BY priority, run_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED)
RETURNING id;

-- name: bench_raw_complete
-- Raw ceiling for the drain: complete a whole claimed batch in one statement.
UPDATE pgq.jobs SET state = 'succeeded', finished_at = now(), heartbeat_at = NULL
WHERE id = ANY(%(ids)s::bigint[]) AND state = 'running';

-- name: bench_drain_progress
-- How far a drain is: finished jobs, and seconds from the first start to the last
-- finish (both by the database clock).
SELECT count(*) FILTER (WHERE finished_at IS NOT NULL) AS finished,
       extract(epoch FROM max(finished_at) - min(started_at))::float8 AS seconds
FROM pgq.jobs;

-- name: bench_stamp_results
-- Latency probes, as epoch seconds: the producer's clock before enqueue (args), the
-- worker's clock when the task started (result), and the finish (database clock).
SELECT (args ->> 'enqueued_at')::float8 AS enqueued_at, (result #>> '{}')::float8 AS started_at,
       extract(epoch FROM finished_at)::float8 AS finished_at
FROM pgq.jobs
WHERE task = 'stamp' AND state = 'succeeded';

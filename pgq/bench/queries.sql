-- The SQL of `pgq bench` and the scripts in benchmarks/ (not the product's: that is
-- pgq/schema/queries.sql). Loaded by pgq/bench/queries.py; used by name.

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
-- Empty the jobs table between bench workloads, so each starts from the same state
-- (in the bench's own throwaway database, so CASCADE reaches only its workflow rows).
TRUNCATE pgq.jobs CASCADE;

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

-- name: bench_jobs_unfinished
-- Whether any job is still queued or running: a drain's end, read from the partial
-- indexes (cheap under a million-row table, unlike counting finished rows).
SELECT EXISTS (SELECT FROM pgq.jobs WHERE state = 'queued')
    OR EXISTS (SELECT FROM pgq.jobs WHERE state = 'running');

-- name: bench_stamp_results
-- Latency probes, as epoch seconds: the producer's clock before enqueue (args), the
-- worker's clock when the task started (result), and the finish (database clock).
SELECT (args ->> 'enqueued_at')::float8 AS enqueued_at, (result #>> '{}')::float8 AS started_at,
       extract(epoch FROM finished_at)::float8 AS finished_at
FROM pgq.jobs
WHERE task = 'stamp' AND state = 'succeeded';

-- name: bench_dashboard_fill
-- benchmarks/dashboard.py: %(n)s jobs shaped like a busy week: 5 queues, 10 tasks;
-- 97%% succeeded and 1%% failed (finished over the last 7 days, runs of 0-3 s), 1%% queued,
-- 0.5%% scheduled, 0.5%% cancelled. One statement, no trigger work per row beyond INSERT's.
INSERT INTO pgq.jobs (queue, task, args, state, run_at, attempt, max_attempts, result, errors,
                      created_at, started_at, finished_at)
SELECT 'q' || (i %% 5), 'task_' || (i %% 10), jsonb_build_object('n', i), s.state,
       CASE WHEN s.state = 'scheduled' THEN now() + interval '1 day' ELSE s.finished - interval '5 s' END,
       CASE WHEN s.state IN ('succeeded', 'failed') THEN 1 ELSE 0 END, 1,
       CASE WHEN s.state = 'succeeded' THEN jsonb_build_object('ok', i) END,
       CASE WHEN s.state = 'failed' THEN jsonb_build_array(jsonb_build_object(
           'attempt', 1, 'at', s.finished, 'type', 'TimeoutError', 'message', 'upstream timed out ' || (i %% 3),
           'traceback', 'Traceback (most recent call last): ...')) ELSE '[]'::jsonb END,
       s.finished - interval '10 s',
       CASE WHEN s.state IN ('succeeded', 'failed') THEN s.finished - make_interval(secs => (i %% 300) / 100.0) END,
       CASE WHEN s.state IN ('succeeded', 'failed', 'cancelled') THEN s.finished END
FROM generate_series(1, %(n)s) AS i
CROSS JOIN LATERAL (
    SELECT CASE
               WHEN i %% 1000 < 970 THEN 'succeeded'
               WHEN i %% 1000 < 980 THEN 'failed'
               WHEN i %% 1000 < 990 THEN 'queued'
               WHEN i %% 1000 < 995 THEN 'scheduled'
               ELSE 'cancelled' END AS state,
           now() - make_interval(secs => (%(n)s - i) * 604800.0 / %(n)s) AS finished
) AS s;

-- name: bench_workers_registered
-- How many of the bench's worker processes (by pid) have registered: they are up.
SELECT count(*) FROM pgq.workers WHERE pid = ANY(%(pids)s::int[]);

-- name: bench_backend_pids
-- The server processes serving the bench database's other connections (the workers'
-- and the producer's), whose CPU time a scenario reads from /proc.
SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid();

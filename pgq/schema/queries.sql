-- Every statement pgq runs, by name. Names are entity first, then verb.
-- Each query starts with "-- name: <name>" and a line saying what it is for.
-- Parameters are psycopg named placeholders; nothing is ever formatted into the text.

-- name: job_insert
-- Enqueue one job. A future run_at (or delay) makes it 'scheduled', otherwise 'queued'.
-- With an idempotency key that a non-final job already holds, inserts nothing.
INSERT INTO pgq.jobs AS j (queue, task, args, state, priority, run_at, max_attempts, idempotency_key, trace_context)
SELECT %(queue)s, %(task)s, %(args)s, CASE WHEN t.run_at > now() THEN 'scheduled' ELSE 'queued' END,
       %(priority)s, t.run_at, %(max_attempts)s, %(idempotency_key)s, %(trace_context)s
FROM (SELECT coalesce(%(run_at)s::timestamptz, now() + %(delay)s::interval, now()) AS run_at) AS t
ON CONFLICT (idempotency_key)
    WHERE idempotency_key IS NOT NULL AND state IN ('scheduled', 'queued', 'running', 'retrying')
    DO NOTHING
RETURNING j.id, j.state, j.run_at, j.created_at;

-- name: job_insert_ready
-- job_insert for a job that is ready now and has no idempotency key (what most
-- enqueues are): a plain INSERT, with no run time to compute and no ON CONFLICT to
-- check. It is 'queued', and its run_at is its created_at (both the default now()).
INSERT INTO pgq.jobs (queue, task, args, priority, max_attempts, trace_context)
VALUES (%(queue)s, %(task)s, %(args)s, %(priority)s, %(max_attempts)s, %(trace_context)s)
RETURNING id, created_at;

-- name: job_ids_reserve
-- Take %(n)s ids for a bulk COPY, in ascending order, with the transaction's now()
-- that becomes their created_at and run_at.
SELECT now() AS now,
       array(SELECT nextval(pg_get_serial_sequence('pgq.jobs', 'id')) FROM generate_series(1, %(n)s)) AS ids;

-- name: job_copy
-- Bulk enqueue fast path for jobs that are ready now and have no idempotency key:
-- rows (with ids from job_ids_reserve) streamed in binary. COPY fires the insert
-- trigger like INSERT does: one NOTIFY per queue.
COPY pgq.jobs (id, queue, task, args, priority, run_at, max_attempts, created_at, trace_context)
FROM STDIN (FORMAT BINARY);

-- name: job_insert_many
-- Bulk enqueue of batches with idempotency keys or run times (job_copy takes the rest):
-- %(jobs)s is a JSON array of objects with the job_insert fields, one statement for
-- all of them. Rows come back in input order of the inserted ones.
INSERT INTO pgq.jobs AS j (queue, task, args, state, priority, run_at, max_attempts, idempotency_key, trace_context)
SELECT s.queue, s.task, s.args, CASE WHEN s.run_at > now() THEN 'scheduled' ELSE 'queued' END,
       s.priority, s.run_at, s.max_attempts, s.idempotency_key, s.trace_context
FROM (
    SELECT r.queue, r.task, r.args, r.priority, r.max_attempts, r.idempotency_key, r.trace_context, r.ord,
           coalesce(r.run_at, now() + r.delay, now()) AS run_at
    FROM jsonb_to_recordset(%(jobs)s::jsonb) AS r(
        ord integer, queue text, task text, args jsonb, priority smallint, run_at timestamptz,
        delay interval, max_attempts integer, idempotency_key text, trace_context jsonb)
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

-- name: job_get_with_snapshot
-- One job by id, and the snapshot it was read in ("xmin:xmax:xip,..."): a change
-- notified by a transaction this snapshot sees is already in the row.
SELECT pg_current_snapshot()::text AS snapshot, j.* FROM pgq.jobs AS j WHERE j.id = %(id)s;

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
-- Claim up to %(limit)s ready jobs from these queues for one worker (pgq.claim_jobs in
-- schema.sql says how): one statement, no explicit transaction.
SELECT * FROM pgq.claim_jobs(%(queues)s::text[], %(limit)s::integer, %(worker_id)s::text);

-- name: job_record_outcomes
-- Record how a batch of attempts ended, one statement for many jobs (the worker's
-- completer). Each outcome is guarded: the same id and attempt still running on this
-- worker, so a late write (the job was rescued, handed back or cancelled meanwhile)
-- changes nothing and is missing from the answer. Kinds:
--   succeeded: the result is stored;
--   failed:    back to 'retrying' at now() + retry_in seconds, or 'failed' when
--              retry_in is NULL, or 'cancelled' when a cancel was requested meanwhile;
--   cancelled: the task stopped at its cancel request.
-- Failures and cancels append their error entry. The state is decided from the row as
-- locked (a cancel request that lands first wins). No lock order is needed: the only
-- other writers that hold some rows while waiting for more are other batches and
-- hand-backs, which never share rows with this one; the heartbeat skips locked rows.
UPDATE pgq.jobs AS j
SET state = CASE
        WHEN o.kind = 'succeeded' THEN 'succeeded'
        WHEN o.kind = 'cancelled' OR j.cancel_requested_at IS NOT NULL THEN 'cancelled'
        WHEN o.retry_in IS NULL THEN 'failed'
        ELSE 'retrying' END,
    result = CASE WHEN o.kind = 'succeeded' THEN o.result::jsonb ELSE j.result END,
    run_at = CASE
        WHEN o.kind = 'failed' AND j.cancel_requested_at IS NULL AND o.retry_in IS NOT NULL
        THEN now() + make_interval(secs => o.retry_in) ELSE j.run_at END,
    finished_at = CASE
        WHEN o.kind = 'failed' AND j.cancel_requested_at IS NULL AND o.retry_in IS NOT NULL
        THEN NULL ELSE now() END,
    heartbeat_at = NULL,
    worker_id = CASE WHEN o.kind = 'failed' THEN NULL ELSE j.worker_id END,
    errors = CASE WHEN o.error IS NULL THEN j.errors ELSE j.errors || jsonb_build_array(
        jsonb_build_object('attempt', j.attempt, 'at', now()) || o.error::jsonb) END,
    -- The task's latest progress report when it was not written yet (it came too soon
    -- after the previous one): it lands with the outcome, never after it.
    progress = CASE WHEN o.percent IS NULL THEN j.progress ELSE jsonb_build_object(
        'percent', o.percent, 'message', o.message, 'at', now()) END
FROM unnest(%(ids)s::bigint[], %(attempts)s::integer[], %(kinds)s::text[],
            %(results)s::text[], %(errors)s::text[], %(retry_in)s::float8[],
            %(percents)s::float8[], %(messages)s::text[])
    AS o(id, attempt, kind, result, error, retry_in, percent, message)
WHERE j.id = o.id AND j.state = 'running' AND j.attempt = o.attempt AND j.worker_id = %(worker_id)s
RETURNING j.id, j.state;

-- name: job_requeue_unfinished
-- A worker hands back jobs it will not finish (shutting down, or claimed ahead and not
-- started) and wakes the other workers. The interrupted attempt is not counted, so a
-- deploy never uses up a job's attempts. A job whose cancel was requested meanwhile is
-- not run again: it ends 'cancelled'.
WITH locked AS MATERIALIZED (
    -- In id order, so two hand-backs of one worker cannot deadlock.
    SELECT id FROM pgq.jobs
    WHERE id = ANY(%(ids)s::bigint[]) AND state = 'running' AND worker_id = %(worker_id)s
    ORDER BY id
    FOR UPDATE
), handed AS (
    UPDATE pgq.jobs AS j
    SET state = CASE WHEN j.cancel_requested_at IS NULL THEN 'queued' ELSE 'cancelled' END,
        finished_at = CASE WHEN j.cancel_requested_at IS NULL THEN NULL ELSE now() END,
        attempt = CASE WHEN j.cancel_requested_at IS NULL THEN j.attempt - 1 ELSE j.attempt END,
        started_at = CASE WHEN j.cancel_requested_at IS NULL THEN NULL ELSE j.started_at END,
        heartbeat_at = NULL,
        worker_id = NULL
    FROM locked
    WHERE j.id = locked.id AND j.state = 'running' AND j.worker_id = %(worker_id)s
    RETURNING j.id, j.queue, j.state
)
SELECT id, state, state = 'queued' AND pg_notify('pgq_jobs', queue) IS NULL AS notified FROM handed;

-- name: worker_heartbeat
-- One statement per beat: (re)register this worker, refresh the heartbeat of the jobs
-- it still owns, and report which of them have a cancel request (as of the statement's
-- snapshot). A job missing from the answer is no longer this worker's (rescued
-- meanwhile). Times are the database's. The row lists the schedules the worker's app
-- declares, so a row recreated after an outage declares them again.
WITH me AS (
    INSERT INTO pgq.workers (id, host, pid, queues, concurrency, schedules)
    VALUES (%(worker_id)s, %(host)s, %(pid)s, %(queues)s, %(concurrency)s, %(schedules)s::text[])
    ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()
    RETURNING id
), refresh AS (
    -- Rows another statement holds (this worker's outcome batch finishing them, a cancel
    -- request, a rescue) are skipped, not waited for: a heartbeat never waits on a lock,
    -- so it can be in no deadlock, and one missed refresh is harmless.
    SELECT id FROM pgq.jobs
    WHERE id = ANY(%(ids)s::bigint[]) AND state = 'running' AND worker_id = %(worker_id)s
    FOR UPDATE SKIP LOCKED
), beat AS (
    UPDATE pgq.jobs AS j SET heartbeat_at = now()
    FROM refresh
    WHERE j.id = refresh.id
)
SELECT id, cancel_requested_at IS NOT NULL AS cancel_requested FROM pgq.jobs
WHERE id = ANY(%(ids)s::bigint[]) AND state = 'running' AND worker_id = %(worker_id)s;

-- name: worker_deregister
-- A worker that stops cleanly removes its row and gives up any lease it holds; the
-- schedules it declared remember that they were declared until now.
WITH gone AS (DELETE FROM pgq.workers WHERE id = %(worker_id)s RETURNING schedules),
declared AS (
    UPDATE pgq.schedules AS s SET declared_at = greatest(s.declared_at, now())
    FROM gone WHERE s.name = ANY(gone.schedules)
)
DELETE FROM pgq.leases WHERE worker_id = %(worker_id)s;

-- name: worker_prune_dead
-- Rows of workers that stopped heartbeating longer ago than the lease (killed hosts);
-- the schedules they declared were last declared at their last heartbeat.
WITH gone AS (
    DELETE FROM pgq.workers WHERE heartbeat_at < now() - %(lease)s::interval
    RETURNING id, schedules, heartbeat_at
), declared AS (
    UPDATE pgq.schedules AS s SET declared_at = greatest(s.declared_at, last.beat)
    FROM (SELECT name, max(heartbeat_at) AS beat FROM gone, unnest(gone.schedules) AS name GROUP BY name) AS last
    WHERE s.name = last.name
)
SELECT id FROM gone;

-- name: lease_acquire
-- Take or renew a named lease: succeeds (returns a row) when it is free, expired, or
-- already ours. Expiry is on the database clock, so worker clocks never matter.
INSERT INTO pgq.leases AS l (name, worker_id, expires_at)
VALUES (%(name)s, %(worker_id)s, now() + %(ttl)s::interval)
ON CONFLICT (name) DO UPDATE
SET worker_id = excluded.worker_id,
    expires_at = excluded.expires_at,
    acquired_at = CASE WHEN l.worker_id = excluded.worker_id THEN l.acquired_at ELSE now() END
WHERE l.worker_id = excluded.worker_id OR l.expires_at < now()
RETURNING acquired_at;

-- name: job_rescue_stale
-- Jobs whose worker stopped heartbeating: the attempt counts, so they go to
-- 'retrying' (due now), 'failed' when it was the last, or 'cancelled' when a cancel
-- was requested. Each gets an error entry naming the silent worker; queues are woken.
WITH stale AS (
    SELECT id, worker_id AS lost_worker, heartbeat_at AS last_beat
    FROM pgq.jobs
    WHERE state = 'running' AND heartbeat_at < now() - %(lease)s::interval
    ORDER BY id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), rescued AS (
    UPDATE pgq.jobs AS j
    SET state = CASE
            WHEN j.cancel_requested_at IS NOT NULL THEN 'cancelled'
            WHEN j.attempt >= j.max_attempts THEN 'failed'
            ELSE 'retrying' END,
        run_at = CASE
            WHEN j.cancel_requested_at IS NULL AND j.attempt < j.max_attempts THEN now() ELSE j.run_at END,
        finished_at = CASE WHEN j.cancel_requested_at IS NOT NULL OR j.attempt >= j.max_attempts THEN now() END,
        heartbeat_at = NULL,
        worker_id = NULL,
        errors = j.errors || jsonb_build_array(jsonb_build_object(
            'attempt', j.attempt,
            'at', now(),
            'type', 'WorkerLost',
            'message', format('rescued: worker %%s sent no heartbeat since %%s', stale.lost_worker, stale.last_beat),
            'traceback', NULL))
    FROM stale
    WHERE j.id = stale.id
    RETURNING j.id, j.queue, j.state, stale.lost_worker
)
SELECT id, state, lost_worker, pg_notify('pgq_jobs', queue) IS NULL AS notified FROM rescued ORDER BY id;

-- name: job_cancel
-- Cancel a job that has not started (or is waiting for its parents or a retry). Running and final
-- jobs are left alone here: job_request_cancel handles running ones.
UPDATE pgq.jobs
SET state = 'cancelled', finished_at = now()
WHERE id = %(id)s AND state IN ('waiting', 'scheduled', 'queued', 'retrying')
RETURNING *;

-- name: job_request_cancel
-- Ask the worker running a job to stop it: mark the row (heartbeats see it even when
-- NOTIFY is lost) and notify the pgq_cancel channel with the job id.
WITH requested AS (
    UPDATE pgq.jobs
    SET cancel_requested_at = coalesce(cancel_requested_at, now())
    WHERE id = %(id)s AND state = 'running'
    RETURNING *
)
SELECT requested.*, pg_notify('pgq_cancel', requested.id::text) IS NULL AS notified FROM requested;

-- name: job_retry
-- Put a failed or cancelled job back in the queue now, with at least one attempt left.
-- A cancel request that stopped it earlier is spent: the new run starts without one.
-- A job with parents that are not final yet waits for them again. A job that one of
-- its parents stops (failed or cancelled, and the job is cancelled when that parent
-- fails) is not retried: retrying that parent revives it (job_blocking_parent names it).
UPDATE pgq.jobs AS j
SET state = CASE WHEN j.has_parents AND w.parents_left > 0 THEN 'waiting' ELSE 'queued' END,
    run_at = now(), finished_at = NULL, cancel_requested_at = NULL,
    max_attempts = greatest(j.max_attempts, j.attempt + 1)
FROM (SELECT %(id)s::bigint AS id) AS target
LEFT JOIN pgq.job_waits AS w ON w.job_id = target.id
WHERE j.id = target.id AND j.state IN ('failed', 'cancelled')
  AND NOT (j.has_parents AND EXISTS (
      SELECT FROM pgq.job_parents AS p JOIN pgq.jobs AS o ON o.id = p.parent_id
      WHERE p.job_id = j.id AND p.cancel_on_failure AND o.state IN ('failed', 'cancelled')))
RETURNING j.*;

-- name: job_blocking_parent
-- The first parent that keeps a job from being retried (see job_retry).
SELECT o.id FROM pgq.job_parents AS p JOIN pgq.jobs AS o ON o.id = p.parent_id
WHERE p.job_id = %(id)s AND p.cancel_on_failure AND o.state IN ('failed', 'cancelled')
ORDER BY p.position
LIMIT 1;

-- name: listener_ping
-- A listener notifies itself (payload: its backend pid), from a second session, to
-- prove its connection still delivers notifications.
SELECT pg_notify('pgq_ping', %(pid)s::text);

-- name: job_set_progress
-- A running task's latest progress; only the same attempt on the same worker writes it.
UPDATE pgq.jobs
SET progress = jsonb_build_object('percent', %(percent)s::float8, 'message', %(message)s::text, 'at', now())
WHERE id = %(id)s AND state = 'running' AND attempt = %(attempt)s AND worker_id = %(worker_id)s;

-- name: job_prune_finished
-- Delete up to %(limit)s jobs in one final state that finished before the cutoff:
-- oldest first along jobs_finished_at_idx, skipping rows someone else has locked. The
-- edges of pruned jobs go with them (only jobs with parents or dependents have any).
WITH doomed AS (
    SELECT id FROM pgq.jobs
    WHERE finished_at < now() - %(older_than)s::interval AND state = %(state)s
      -- A parent stays while a job that reads its result has not finished.
      AND NOT (has_dependents AND EXISTS (
          SELECT FROM pgq.job_parents AS p JOIN pgq.jobs AS c ON c.id = p.job_id
          WHERE p.parent_id = pgq.jobs.id AND c.finished_at IS NULL))
    ORDER BY finished_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), pruned AS (
    DELETE FROM pgq.jobs AS j USING doomed WHERE j.id = doomed.id
    RETURNING j.id, j.has_parents, j.has_dependents
), edges_to_parents AS (
    DELETE FROM pgq.job_parents WHERE job_id IN (SELECT id FROM pruned WHERE has_parents)
), waits AS (
    DELETE FROM pgq.job_waits WHERE job_id IN (SELECT id FROM pruned WHERE has_parents)
), edges_to_dependents AS (
    DELETE FROM pgq.job_parents WHERE parent_id IN (SELECT id FROM pruned WHERE has_dependents)
)
SELECT count(*)::int AS pruned FROM pruned;

-- name: workflow_prune_empty
-- Delete workflows whose steps have all been pruned (older than the cutoff, so that a
-- workflow being written is never taken for an empty one).
DELETE FROM pgq.workflows AS w
WHERE w.created_at < now() - %(older_than)s::interval
  AND NOT EXISTS (SELECT FROM pgq.jobs AS j WHERE j.workflow_id = w.id);

-- name: job_clear_old_results
-- Drop the stored result of up to %(limit)s succeeded jobs older than the result TTL.
WITH expired AS (
    SELECT id FROM pgq.jobs
    WHERE finished_at < now() - %(older_than)s::interval AND state = 'succeeded' AND result IS NOT NULL
    ORDER BY finished_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE pgq.jobs AS j SET result = NULL FROM expired WHERE j.id = expired.id;

-- name: jobs_needs_manual_vacuum
-- Whether autovacuum is off server-wide while pgq.jobs has gathered many dead rows
-- (then the pruner vacuums the table itself, or it would only ever grow), and whether
-- this role may (VACUUM only warns and skips a table its caller does not own).
SELECT current_setting('autovacuum') = 'off' AND s.n_dead_tup > greatest(%(min_dead)s, 0.2 * s.n_live_tup),
       pg_has_role(c.relowner, 'USAGE')
FROM pg_stat_user_tables AS s JOIN pg_class AS c ON c.oid = s.relid
WHERE s.relid = 'pgq.jobs'::regclass;

-- name: jobs_vacuum
-- Only run by the pruner when jobs_needs_manual_vacuum says so (needs table ownership).
VACUUM (ANALYZE) pgq.jobs;

-- name: queue_limits_set
-- Set (or clear, with NULLs) a queue's limits; takes effect at the next claim.
INSERT INTO pgq.queues AS l (queue, max_running, rate_limit, rate_period)
VALUES (%(queue)s, %(max_running)s, %(rate_limit)s, %(rate_period)s)
ON CONFLICT (queue) DO UPDATE
SET max_running = excluded.max_running, rate_limit = excluded.rate_limit,
    rate_period = excluded.rate_period, updated_at = now()
RETURNING queue, max_running, rate_limit, rate_period;

-- name: queue_limits_list
-- Every queue that has limits configured.
SELECT queue, max_running, rate_limit, rate_period FROM pgq.queues ORDER BY queue;

-- name: job_notify_queue
-- Wake the workers of one queue (after a job was put back by retry).
SELECT pg_notify('pgq_jobs', %(queue)s);

-- name: queue_stats_list
-- The pgq.queue_stats view for the CLI, and a line for each paused queue without jobs.
SELECT queue, state, jobs, oldest_queued_age, paused FROM pgq.queue_stats
UNION ALL
SELECT q.queue, NULL, 0, NULL, true FROM pgq.queues AS q
WHERE q.paused_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pgq.jobs AS j WHERE j.queue = q.queue)
ORDER BY 1, 2;

-- name: queue_live_counts
-- Per queue and non-final state: jobs, and how long the oldest ready job has waited
-- (since it became ready: run_at, or created_at when run_at was given in the past).
-- Each branch matches one partial index, so the cost follows the backlog, not the
-- millions of finished rows.
SELECT queue, state, count(*) AS jobs,
       extract(epoch FROM now() - min(ready_at) FILTER (WHERE state = 'queued'))::float8 AS oldest_queued_seconds
FROM (
    SELECT queue, state, greatest(run_at, created_at) AS ready_at FROM pgq.jobs WHERE state = 'queued'
    UNION ALL
    SELECT queue, state, NULL FROM pgq.jobs WHERE state IN ('scheduled', 'retrying')
    UNION ALL
    SELECT queue, state, NULL FROM pgq.jobs WHERE state = 'running'
) AS live
GROUP BY queue, state;

-- name: queue_finished_recently
-- Per queue and final state: jobs that finished in the last minute (jobs_finished_at_idx).
SELECT queue, state, count(*) AS jobs FROM pgq.jobs
WHERE finished_at > now() - interval '1 minute'
GROUP BY queue, state;

-- name: queue_table_size_estimate
-- The planner's row estimate of pgq.jobs (-1 when never analyzed): decides whether
-- finished jobs are counted or estimated.
SELECT reltuples::float8 AS rows FROM pg_class WHERE oid = 'pgq.jobs'::regclass;

-- name: queue_final_counts
-- Exact per queue and final state counts; only run while the table is small.
SELECT queue, state, count(*) AS jobs FROM pgq.jobs
WHERE state IN ('succeeded', 'failed', 'cancelled')
GROUP BY queue, state;

-- name: queue_final_counts_estimate
-- Estimated per queue and final state counts from the jobs_queue_state statistics
-- (most common (queue, state) pairs and their frequencies, refreshed by ANALYZE).
-- Pairs too rare to be in the sample are missing. No rows: not analyzed yet.
SELECT s.most_common_vals[i][1] AS queue, s.most_common_vals[i][2] AS state,
       round(s.most_common_freqs[i] * c.reltuples)::bigint AS jobs
FROM pg_stats_ext AS s
JOIN pg_class AS c ON c.oid = 'pgq.jobs'::regclass
CROSS JOIN LATERAL generate_subscripts(s.most_common_freqs, 1) AS i
WHERE s.statistics_schemaname = 'pgq' AND s.statistics_name = 'jobs_queue_state'
  AND s.most_common_vals[i][2] IN ('succeeded', 'failed', 'cancelled');

-- name: worker_list
-- Worker processes that registered themselves, oldest first, with seconds since
-- their last heartbeat by the database clock.
SELECT id, host, pid, queues, concurrency, started_at, heartbeat_at,
       extract(epoch FROM now() - heartbeat_at)::float8 AS seconds_since_heartbeat
FROM pgq.workers
ORDER BY started_at, id;

-- name: job_events_listen
-- Subscribe to job changes (the HTTP API's wait and events); payloads are JSON. And to
-- listener pings (payload: the listening backend's pid), which prove the line delivers.
-- One transaction: LISTEN, and register as a watcher, without which the per-job
-- notifications of claims and outcomes are not sent (pgq.watch_job_events, schema.sql).
LISTEN pgq_job_events; SELECT pgq.watch_job_events();
LISTEN pgq_ping;

-- name: schema_version_get
-- The alembic revision the database is at (raises if pgq was never migrated).
SELECT version_num FROM pgq.alembic_version;

-- name: worker_listen
-- Subscribe to new work (payload: a queue name), cancel requests (payload: a job id)
-- and listener pings (payload: the listening backend's pid).
LISTEN pgq_jobs;
LISTEN pgq_cancel;
LISTEN pgq_ping;

-- name: migration_lock
-- Serialises `pgq migrate` across processes: the second waits, then finds nothing to do.
-- Held until the migration's transaction ends (a session lock would stay behind on a
-- pooled server connection when migrating through PgBouncer in transaction mode).
SELECT pg_advisory_xact_lock(hashtext('pgq.migrate'));

-- name: session_backend_pid
-- The server process running this statement: differs from the pid the connection
-- reported at start when a connection pooler sits in between.
SELECT pg_backend_pid();

-- name: schema_create
-- The pgq schema must exist before alembic writes its version table into it.
CREATE SCHEMA IF NOT EXISTS pgq;

-- name: clock_now
-- The database's clock: schedules compute their ticks from it, never from a worker's.
SELECT now();

-- name: schedule_upsert_many
-- A starting worker writes its app's schedules (%(schedules)s: a JSON array of rows).
-- A new row is inserted; a changed one is updated, and its next_run_at replaced only
-- when its timing (cron, every_seconds, timezone) changed; an identical one is left
-- alone. Returns the rows inserted or changed.
INSERT INTO pgq.schedules AS s (
    name, task, queue, args, priority, max_attempts, cron, every_seconds, timezone, missed, next_run_at)
SELECT r.name, r.task, r.queue, r.args, r.priority, r.max_attempts, r.cron, r.every_seconds, r.timezone,
       r.missed, r.next_run_at
FROM jsonb_to_recordset(%(schedules)s::jsonb) AS r(
    name text, task text, queue text, args jsonb, priority smallint, max_attempts integer, cron text,
    every_seconds integer, timezone text, missed text, next_run_at timestamptz)
ON CONFLICT (name) DO UPDATE
SET task = excluded.task, queue = excluded.queue, args = excluded.args, priority = excluded.priority,
    max_attempts = excluded.max_attempts, cron = excluded.cron, every_seconds = excluded.every_seconds,
    timezone = excluded.timezone, missed = excluded.missed,
    next_run_at = CASE
        WHEN (s.cron, s.every_seconds, s.timezone) IS DISTINCT FROM
             (excluded.cron, excluded.every_seconds, excluded.timezone)
        THEN excluded.next_run_at ELSE s.next_run_at END,
    updated_at = now()
WHERE (s.task, s.queue, s.args, s.priority, s.max_attempts, s.cron, s.every_seconds, s.timezone, s.missed)
      IS DISTINCT FROM
      (excluded.task, excluded.queue, excluded.args, excluded.priority, excluded.max_attempts, excluded.cron,
       excluded.every_seconds, excluded.timezone, excluded.missed)
RETURNING s.name, s.next_run_at, s.xmax = 0 AS inserted;

-- name: schedule_lock_next_due
-- The due schedule with the oldest tick, locked for this transaction; rows another
-- leader is enqueueing are skipped, and one it just advanced is no longer due. A
-- schedule no live worker declares (its app stopped) is orphaned and not run.
SELECT s.*, now() AS now FROM pgq.schedules AS s
WHERE s.next_run_at <= now() AND s.name <> ALL(%(exclude)s::text[])
  AND EXISTS (SELECT FROM pgq.workers AS w WHERE s.name = ANY(w.schedules))
ORDER BY s.next_run_at, s.name
LIMIT 1
FOR UPDATE SKIP LOCKED;

-- name: schedule_advance
-- Move a locked schedule to its next tick and remember the run just enqueued (if any).
UPDATE pgq.schedules
SET next_run_at = %(next_run_at)s,
    last_run_at = coalesce(%(last_run_at)s, last_run_at),
    last_job_id = CASE WHEN %(last_run_at)s::timestamptz IS NULL THEN last_job_id ELSE %(last_job_id)s END
WHERE name = %(name)s;

-- name: schedule_next_due_in
-- Seconds, by the database clock, until the next schedule is due (NULL: none), so the
-- leader can wake for a schedule that repeats faster than its maintenance interval.
SELECT extract(epoch FROM min(s.next_run_at) - now())::float8 AS seconds FROM pgq.schedules AS s
WHERE s.name <> ALL(%(exclude)s::text[])
  AND EXISTS (SELECT FROM pgq.workers AS w WHERE s.name = ANY(w.schedules));

-- name: schedule_orphaned_due
-- Due schedules that no live worker declares: the leader says once that it skips them.
SELECT s.name, s.task, s.declared_at FROM pgq.schedules AS s
WHERE s.next_run_at <= now()
  AND NOT EXISTS (SELECT FROM pgq.workers AS w WHERE s.name = ANY(w.schedules))
ORDER BY s.name;

-- name: schedule_list
-- Every schedule, soonest next run first, with the live workers that declare it
-- (`pgq schedules`, app.list_schedules()).
SELECT name, task, queue, args, priority, max_attempts, cron, every_seconds, timezone, missed,
       next_run_at, last_run_at, last_job_id, updated_at, declared_by, orphaned, last_declared_at
FROM pgq.schedule_status
ORDER BY next_run_at, name;

-- name: schedule_delete
-- Remove one schedule (`pgq schedules delete NAME`); its enqueued jobs stay.
DELETE FROM pgq.schedules WHERE name = %(name)s RETURNING name;

-- ---------------------------------------------------------------------------------
-- The dashboard (api/ui/): one named query per panel. Each reads only what a partial
-- index or jobs_finished_at_idx can answer, so pages stay cheap on a 1M-row table.
-- ---------------------------------------------------------------------------------

-- name: ui_queue_settings
-- Every configured queue: limits and whether (since when) it is paused.
SELECT q.queue, q.max_running, q.rate_limit, extract(epoch FROM q.rate_period)::float8 AS rate_period_seconds,
       q.paused_at IS NOT NULL AS paused, q.paused_at
FROM pgq.queues AS q
ORDER BY q.queue;

-- name: ui_finished_per_minute
-- Per queue, minute and final state: jobs finished over the last hour (a range of
-- jobs_finished_at_idx). minute is 0 (oldest) to 59 (the current minute).
SELECT queue, state, count(*)::int AS jobs,
       least(59, greatest(0, 59 - floor(extract(epoch FROM now() - finished_at) / 60)))::int AS minute
FROM pgq.jobs
WHERE finished_at > now() - interval '1 hour'
GROUP BY 1, 2, 4;

-- name: ui_workers_alive
-- Workers that heartbeated within %(lease)s.
SELECT count(*)::int AS alive FROM pgq.workers WHERE heartbeat_at > now() - %(lease)s::interval;

-- name: ui_running_by_worker
-- Running jobs per worker (jobs_running_idx), at most 20 ids each.
SELECT worker_id, count(*)::int AS running, (array_agg(id ORDER BY id))[1:20] AS job_ids
FROM pgq.jobs
WHERE state = 'running'
GROUP BY worker_id;

-- name: ui_job_find_by_key
-- Jobs holding an idempotency key, newest first (live ones through
-- jobs_idempotency_key_idx, finished ones through jobs_idempotency_key_any_idx).
SELECT * FROM pgq.jobs WHERE idempotency_key = %(key)s ORDER BY id DESC LIMIT 50;

-- name: ui_task_stats
-- Per task: finished runs, failures and duration percentiles (seconds from start to
-- finish) over the last %(window)s, read backwards along jobs_finished_at_idx and
-- capped at the latest %(cap)s runs, so a busy day costs no more than a quiet one.
-- covered_seconds says how far back the runs read reach (less than the window when
-- the cap was hit).
WITH recent AS MATERIALIZED (
    SELECT task, state, started_at, finished_at FROM pgq.jobs
    WHERE finished_at > now() - %(window)s::interval
    ORDER BY finished_at DESC
    LIMIT %(cap)s
)
SELECT task, count(*)::int AS runs,
       count(*) FILTER (WHERE state = 'failed')::int AS failed,
       count(*) FILTER (WHERE state = 'cancelled')::int AS cancelled,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))
           FILTER (WHERE started_at IS NOT NULL) AS p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))
           FILTER (WHERE started_at IS NOT NULL) AS p95,
       (SELECT count(*) FROM recent)::int AS read,
       (SELECT extract(epoch FROM now() - min(finished_at)) FROM recent)::float8 AS covered_seconds
FROM recent
GROUP BY task
ORDER BY runs DESC, task
LIMIT 200;

-- name: ui_task_top_errors
-- The most common last errors (type and message) among the latest %(cap)s runs that
-- finished in the last %(window)s, per task.
WITH recent AS MATERIALIZED (
    SELECT task, state, errors FROM pgq.jobs
    WHERE finished_at > now() - %(window)s::interval
    ORDER BY finished_at DESC
    LIMIT %(cap)s
)
SELECT task, errors -> -1 ->> 'type' AS type, left(errors -> -1 ->> 'message', 300) AS message, count(*)::int AS jobs
FROM recent
WHERE state = 'failed'
GROUP BY 1, 2, 3
ORDER BY jobs DESC, task
LIMIT 20;

-- name: ui_jobs_matching_count
-- How many jobs in these states match the filter (the confirmation of a bulk action).
SELECT count(*)::int AS jobs FROM pgq.jobs
WHERE state = ANY(%(states)s::text[])
  AND (%(queue)s::text IS NULL OR queue = %(queue)s)
  AND (%(task)s::text IS NULL OR task = %(task)s);

-- name: ui_jobs_retry_matching
-- Put every failed job matching the filter back in its queue (like job_retry). A job
-- whose idempotency key a live job holds stays failed, and of several failed jobs
-- with one key only the newest goes back: the key stays unique among live jobs.
WITH chosen AS (
    SELECT DISTINCT ON (coalesce(f.idempotency_key, f.id::text)) f.id
    FROM pgq.jobs AS f
    WHERE f.state = 'failed'
      AND (%(queue)s::text IS NULL OR f.queue = %(queue)s)
      AND (%(task)s::text IS NULL OR f.task = %(task)s)
      AND (f.idempotency_key IS NULL OR NOT EXISTS (
          SELECT FROM pgq.jobs AS live
          WHERE live.idempotency_key = f.idempotency_key
            AND live.state IN ('scheduled', 'queued', 'running', 'retrying')))
    ORDER BY coalesce(f.idempotency_key, f.id::text), f.id DESC
), retried AS (
    UPDATE pgq.jobs AS j
    SET state = 'queued', run_at = now(), finished_at = NULL, cancel_requested_at = NULL,
        max_attempts = greatest(j.max_attempts, j.attempt + 1)
    FROM chosen
    WHERE j.id = chosen.id AND j.state = 'failed'
    RETURNING j.queue
), woken AS (
    -- One wake-up per queue, like job_notify_queue.
    SELECT pg_notify('pgq_jobs', r.queue) FROM (SELECT DISTINCT queue FROM retried) AS r
)
SELECT (SELECT count(*) FROM retried)::int AS jobs, (SELECT count(*) FROM woken)::int AS queues;

-- name: ui_jobs_cancel_waiting_matching
-- Cancel every job matching the filter that has not started (waiting, scheduled,
-- queued, retrying), like job_cancel.
WITH cancelled AS (
    UPDATE pgq.jobs
    SET state = 'cancelled', finished_at = now()
    WHERE state IN ('waiting', 'scheduled', 'queued', 'retrying')
      AND (%(queue)s::text IS NULL OR queue = %(queue)s)
      AND (%(task)s::text IS NULL OR task = %(task)s)
    RETURNING id
)
SELECT count(*)::int AS jobs FROM cancelled;

-- name: queue_pause
-- Pause a queue: the claim gives nothing from it until it is resumed (running jobs
-- finish). Creates the queue's row when it has none; pausing twice keeps the first time.
INSERT INTO pgq.queues AS q (queue, paused_at)
VALUES (%(queue)s, now())
ON CONFLICT (queue) DO UPDATE SET paused_at = coalesce(q.paused_at, now()), updated_at = now()
RETURNING queue, paused_at;

-- name: queue_resume
-- Resume a queue (a no-op when it is not paused) and wake its workers at once: the
-- notification is delivered at commit, with the queue visible as resumed.
WITH resumed AS (
    UPDATE pgq.queues SET paused_at = NULL, updated_at = now()
    WHERE queue = %(queue)s AND paused_at IS NOT NULL
    RETURNING queue
)
SELECT %(queue)s::text AS queue, NULL::timestamptz AS paused_at,
       pg_notify('pgq_jobs', %(queue)s) IS NULL AS notified, (SELECT count(*) FROM resumed) AS resumed;

-- name: queue_paused_list
-- The paused queues, with the time each was paused.
SELECT queue, paused_at FROM pgq.queues WHERE paused_at IS NOT NULL ORDER BY queue;


-- ---------------------------------------------------------------------------------
-- Read replicas (api/reads.py): WAL positions as bytes since 0/0, so they compare as
-- integers. The primary's is where a write ends; the replica's is what it replayed.
-- ---------------------------------------------------------------------------------
-- name: wal_position_primary
-- Where the primary's WAL ends now: a client that wrote before this reads its write
-- on any replica whose replay position has reached it.
SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint AS position;

-- name: wal_position_replica
-- How far a replica has replayed (NULL replayed: not a replica, or nothing replayed).
SELECT pg_is_in_recovery() AS in_recovery,
       (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint AS replayed;

-- name: job_enqueue_dependent
-- Jobs that wait for other jobs, with their edges (and their workflow's row when
-- %(workflow_name)s is given), in one call: pgq.enqueue_dependent in schema.sql says how.
SELECT * FROM pgq.enqueue_dependent(
    %(workflow_name)s::text, %(steps)s::jsonb, %(edge_step)s::integer[], %(edge_parent_step)s::integer[],
    %(edge_parent_id)s::bigint[], %(edge_cancel)s::boolean[]);

-- name: job_parents_list
-- A job's parents in the order they were given, with their results: what a dependent
-- task reads through current_job().parents when it starts.
SELECT p.position, j.id, j.step, j.task, j.state, j.result
FROM pgq.job_parents AS p
JOIN pgq.jobs AS j ON j.id = p.parent_id
WHERE p.job_id = %(id)s
ORDER BY p.position;

-- name: workflow_get
-- One workflow with its steps counted by state.
SELECT * FROM pgq.workflow_status WHERE id = %(id)s;

-- name: workflow_steps_list
-- A workflow's steps in the order they were given (their ids ascend with it), how many
-- parents each still waits for, and whether each ends the workflow: no other step of it
-- waits for it.
SELECT j.*, w.parents_left, NOT j.has_dependents OR NOT EXISTS (
           SELECT FROM pgq.job_parents AS p JOIN pgq.jobs AS c ON c.id = p.job_id
           WHERE p.parent_id = j.id AND c.workflow_id = j.workflow_id) AS ends_workflow
FROM pgq.jobs AS j
LEFT JOIN pgq.job_waits AS w ON w.job_id = j.id
WHERE j.workflow_id = %(id)s ORDER BY j.id;

-- name: workflow_pending_step
-- The last step of a workflow that is not final (what wait_workflow waits for next).
SELECT id FROM pgq.jobs WHERE workflow_id = %(id)s AND finished_at IS NULL ORDER BY id DESC LIMIT 1;

-- name: workflow_list
-- Newest workflows first, with their counts; keyset pagination with before_id. The
-- page is chosen on pgq.workflows first, so only its workflows' steps are counted.
SELECT s.*
FROM (
    SELECT id FROM pgq.workflows
    WHERE %(before_id)s::bigint IS NULL OR id < %(before_id)s
    ORDER BY id DESC
    LIMIT %(limit)s
) AS w
CROSS JOIN LATERAL (SELECT * FROM pgq.workflow_status AS v WHERE v.id = w.id) AS s
ORDER BY s.id DESC;

-- name: workflow_cancel
-- Cancel a workflow: steps that have not started end 'cancelled' at once, running ones
-- are asked to stop (as job_request_cancel). Finished steps are left as they are.
WITH stopped AS (
    UPDATE pgq.jobs
    SET state = 'cancelled', finished_at = now()
    WHERE workflow_id = %(id)s AND state IN ('waiting', 'scheduled', 'queued', 'retrying')
    RETURNING id
), asked AS (
    UPDATE pgq.jobs
    SET cancel_requested_at = coalesce(cancel_requested_at, now())
    WHERE workflow_id = %(id)s AND state = 'running'
    RETURNING id
), notified AS (
    SELECT pg_notify('pgq_cancel', asked.id::text) FROM asked
)
SELECT (SELECT count(*) FROM stopped)::int AS cancelled, (SELECT count(*) FROM notified)::int AS stopping;

-- name: workflow_retry
-- Retry a workflow: its failed and cancelled steps run again (as job_retry), except the
-- ones a failed parent cancelled: retrying that parent makes them wait again (the
-- jobs_settle_dependents trigger), and then run after it.
WITH retried AS (
    UPDATE pgq.jobs AS j
    SET state = CASE WHEN j.has_parents AND w.parents_left > 0 THEN 'waiting' ELSE 'queued' END, run_at = now(),
        finished_at = NULL, cancel_requested_at = NULL, max_attempts = greatest(j.max_attempts, j.attempt + 1)
    FROM pgq.jobs AS s
    LEFT JOIN pgq.job_waits AS w ON w.job_id = s.id
    WHERE s.workflow_id = %(id)s AND j.id = s.id AND j.state IN ('failed', 'cancelled') AND w.cancelled_by IS NULL
    RETURNING j.queue
), woken AS (
    SELECT pg_notify('pgq_jobs', r.queue) FROM (SELECT DISTINCT queue FROM retried) AS r
)
SELECT (SELECT count(*) FROM retried)::int AS retried, (SELECT count(*) FROM woken)::int AS queues;

-- name: ui_workflow_edges
-- The edges among a workflow's steps and to the jobs they depend on, each step's parents
-- in the order they were given (job_parents' primary key).
SELECT p.job_id, p.parent_id
FROM pgq.jobs AS j
JOIN pgq.job_parents AS p ON p.job_id = j.id
WHERE j.workflow_id = %(id)s
ORDER BY p.job_id, p.position;

-- name: ui_job_parents
-- A job's first %(limit)s parents, in the order given, without their results (a join
-- can have thousands): its dashboard page.
SELECT j.id, j.step, j.task, j.state
FROM pgq.job_parents AS p
JOIN pgq.jobs AS j ON j.id = p.parent_id
WHERE p.job_id = %(id)s
ORDER BY p.position
LIMIT %(limit)s;

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
RETURNING j.*;

-- name: job_insert_many
-- Bulk enqueue: %(jobs)s is a JSON array of objects with the job_insert fields, one
-- statement for all of them. Rows come back in input order of the inserted ones.
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
-- %(retry_in)s is NULL, or 'cancelled' when a cancel was requested meanwhile. The
-- error entry is appended; guarded like job_set_succeeded.
UPDATE pgq.jobs
SET state = CASE
        WHEN cancel_requested_at IS NOT NULL THEN 'cancelled'
        WHEN %(retry_in)s::interval IS NULL THEN 'failed'
        ELSE 'retrying' END,
    run_at = CASE
        WHEN cancel_requested_at IS NULL AND %(retry_in)s::interval IS NOT NULL THEN now() + %(retry_in)s::interval
        ELSE run_at END,
    finished_at = CASE WHEN cancel_requested_at IS NOT NULL OR %(retry_in)s::interval IS NULL THEN now() END,
    heartbeat_at = NULL,
    worker_id = NULL,
    errors = errors || jsonb_build_array(
        jsonb_build_object('attempt', attempt, 'at', now()) || %(error)s::jsonb)
WHERE id = %(id)s AND state = 'running' AND attempt = %(attempt)s AND worker_id = %(worker_id)s
RETURNING id, state;

-- name: job_set_cancelled
-- A running job stopped at its cancel request; guarded like job_set_succeeded.
UPDATE pgq.jobs
SET state = 'cancelled', finished_at = now(), heartbeat_at = NULL,
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

-- name: worker_heartbeat
-- One statement per beat: (re)register this worker, refresh the heartbeat of the jobs
-- it still owns, and report which of them have a cancel request. A job missing from
-- the answer is no longer this worker's (rescued meanwhile). Times are the database's.
WITH me AS (
    INSERT INTO pgq.workers (id, host, pid, queues, concurrency)
    VALUES (%(worker_id)s, %(host)s, %(pid)s, %(queues)s, %(concurrency)s)
    ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()
    RETURNING id
), beat AS (
    UPDATE pgq.jobs SET heartbeat_at = now()
    WHERE id = ANY(%(ids)s::bigint[]) AND state = 'running' AND worker_id = %(worker_id)s
    RETURNING id, cancel_requested_at IS NOT NULL AS cancel_requested
)
SELECT id, cancel_requested FROM beat;

-- name: worker_deregister
-- A worker that stops cleanly removes its row and gives up any lease it holds.
WITH gone AS (DELETE FROM pgq.workers WHERE id = %(worker_id)s)
DELETE FROM pgq.leases WHERE worker_id = %(worker_id)s;

-- name: worker_prune_dead
-- Rows of workers that stopped heartbeating longer ago than the lease (killed hosts).
DELETE FROM pgq.workers WHERE heartbeat_at < now() - %(lease)s::interval
RETURNING id;

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

-- name: lease_release
-- Give a lease up at once, so the next worker need not wait for it to expire.
DELETE FROM pgq.leases WHERE name = %(name)s AND worker_id = %(worker_id)s;

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
-- Cancel a job that has not started (or is waiting for a retry). Running and final
-- jobs are left alone here: job_request_cancel handles running ones.
UPDATE pgq.jobs
SET state = 'cancelled', finished_at = now()
WHERE id = %(id)s AND state IN ('scheduled', 'queued', 'retrying')
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
UPDATE pgq.jobs
SET state = 'queued', run_at = now(), finished_at = NULL,
    max_attempts = greatest(max_attempts, attempt + 1)
WHERE id = %(id)s AND state IN ('failed', 'cancelled')
RETURNING *;

-- name: listener_ping
-- The listener notifies itself to prove its connection still delivers notifications.
SELECT pg_notify('pgq_ping', pg_backend_pid()::text);

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
-- Subscribe to new work (payload: a queue name), cancel requests (payload: a job id)
-- and listener pings (payload: the pinging backend's pid).
LISTEN pgq_jobs;
LISTEN pgq_cancel;
LISTEN pgq_ping;

-- name: migration_lock
-- Serialises `pgq migrate` across processes: the second waits, then finds nothing to do.
SELECT pg_advisory_lock(hashtext('pgq.migrate'));

-- name: migration_unlock
-- Releases migration_lock.
SELECT pg_advisory_unlock(hashtext('pgq.migrate'));

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
-- leader is enqueueing are skipped, and one it just advanced is no longer due.
SELECT s.*, now() AS now FROM pgq.schedules AS s
WHERE s.next_run_at <= now() AND s.name <> ALL(%(exclude)s::text[])
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
SELECT extract(epoch FROM min(next_run_at) - now())::float8 AS seconds FROM pgq.schedules
WHERE name <> ALL(%(exclude)s::text[]);

-- name: schedule_list
-- Every schedule, soonest next run first (`pgq schedules`, app.list_schedules()).
SELECT name, task, queue, args, priority, max_attempts, cron, every_seconds, timezone, missed,
       next_run_at, last_run_at, last_job_id, updated_at
FROM pgq.schedules
ORDER BY next_run_at, name;

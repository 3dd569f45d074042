-- Pausing a queue, and start times a rate limit can trust.
--
-- pgq.queues.paused_at: a paused queue (NULL: not paused) gives the claim nothing until
-- it is resumed; running jobs finish. Pausing a queue that has no row creates its row.
--
-- The claim took the time of its starts from now(), the transaction's start, before it
-- waited for the queue rows' lock: claimers then stamped, counted and pruned the rate
-- window in a different order from the one they held the lock in, and up to 28 starts
-- landed in one second of a queue limited to 20 per second.

ALTER TABLE pgq.queues ADD COLUMN paused_at timestamptz;

COMMENT ON COLUMN pgq.queues.paused_at IS 'When the queue was paused (NULL: not paused); workers claim nothing from a paused queue.';

CREATE OR REPLACE VIEW pgq.queue_stats AS
SELECT
    s.queue,
    s.state,
    s.jobs,
    s.oldest_queued_age,
    EXISTS (SELECT 1 FROM pgq.queues AS q WHERE q.queue = s.queue AND q.paused_at IS NOT NULL) AS paused
FROM (
    SELECT queue, state, count(*) AS jobs, CASE WHEN state = 'queued' THEN now() - min(run_at) END AS oldest_queued_age
    FROM pgq.jobs
    GROUP BY queue, state
) AS s;

COMMENT ON VIEW pgq.queue_stats IS 'Job counts per queue and state, with the age of the oldest ready job and whether the queue is paused.';

CREATE OR REPLACE FUNCTION pgq.claim_jobs(claim_queues text[], claim_limit integer, claim_worker text)
RETURNS SETOF pgq.jobs
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    claim_at timestamptz;
BEGIN
    -- Limited or paused queues only (the others take no lock): claimers of such a
    -- queue wait here for each other, and the claim below then sees the previous one's
    -- starts. With no paused queue this is the same single lookup as without pausing.
    PERFORM 1 FROM pgq.queues AS l
    WHERE l.queue = ANY(claim_queues)
      AND (l.max_running IS NOT NULL OR l.rate_limit IS NOT NULL OR l.paused_at IS NOT NULL)
    ORDER BY l.queue
    FOR UPDATE;
    -- Best priority (lowest number) first, then oldest run_at, then id. The attempt is
    -- counted here, at claim, so a job that kills its worker cannot loop forever.
    IF NOT FOUND AND cardinality(claim_queues) = 1 THEN
        -- One queue without limits, the common case: the bare claim, one index scan.
        RETURN QUERY
        WITH candidates AS (
            SELECT id FROM pgq.jobs
            WHERE state = 'queued' AND queue = claim_queues[1]
            ORDER BY priority, run_at, id
            LIMIT claim_limit
            FOR UPDATE SKIP LOCKED
        )
        UPDATE pgq.jobs AS j
        SET state = 'running', attempt = j.attempt + 1, started_at = now(), heartbeat_at = now(),
            worker_id = claim_worker, progress = NULL
        FROM candidates
        WHERE j.id = candidates.id
        RETURNING j.*;
        RETURN;
    END IF;
    -- The clock is read after the lock, never now(): claimers then stamp in the order
    -- they hold the lock, and each one counts every start made before it.
    claim_at := clock_timestamp();
    -- Several queues, limits or a pause: a paused queue gets nothing, a limited one no
    -- more than its free running slots and its remaining start rate.
    RETURN QUERY
    WITH allowance AS (
        SELECT q.name,
            CASE WHEN l.paused_at IS NOT NULL THEN 0 ELSE least(
                claim_limit,
                CASE WHEN l.max_running IS NULL THEN claim_limit ELSE l.max_running - (
                    SELECT count(*) FROM pgq.jobs AS r WHERE r.state = 'running' AND r.queue = q.name) END,
                CASE WHEN l.rate_limit IS NULL THEN claim_limit ELSE l.rate_limit - (
                    SELECT count(*) FROM unnest(l.recent_starts) AS s(at) WHERE s.at > claim_at - l.rate_period) END
            ) END AS slots
        FROM unnest(claim_queues) AS q(name)
        LEFT JOIN pgq.queues AS l ON l.queue = q.name
    ), candidates AS (
        -- One ordered index scan per queue, skipping rows other workers are claiming.
        SELECT c.id, c.priority, c.run_at
        FROM allowance AS a
        CROSS JOIN LATERAL (
            SELECT id, priority, run_at FROM pgq.jobs
            WHERE state = 'queued' AND queue = a.name
            ORDER BY priority, run_at, id
            LIMIT greatest(a.slots, 0)
            FOR UPDATE SKIP LOCKED
        ) AS c
        ORDER BY c.priority, c.run_at, c.id
        LIMIT claim_limit
    ), claimed AS (
        UPDATE pgq.jobs AS j
        SET state = 'running', attempt = j.attempt + 1, started_at = claim_at, heartbeat_at = claim_at,
            worker_id = claim_worker, progress = NULL
        FROM candidates
        WHERE j.id = candidates.id
        RETURNING j.*
    ), rate_counted AS (
        -- Rate-limited queues remember these starts (and forget those out of the window).
        -- They are remembered at the clock after the rows changed (the aggregate over
        -- claimed waits for the whole update), so a start stays in the window for a
        -- full period after the moment the job really turned running.
        UPDATE pgq.queues AS l
        SET recent_starts = coalesce(
                (SELECT array_agg(s.at) FROM unnest(l.recent_starts) AS s(at) WHERE s.at > claim_at - l.rate_period),
                '{}') || array_fill(clock_timestamp(), ARRAY[n.started])
        FROM (SELECT queue, count(*)::int AS started FROM claimed GROUP BY queue) AS n
        WHERE l.queue = n.queue AND l.rate_limit IS NOT NULL
    )
    SELECT * FROM claimed;
END;
$$;

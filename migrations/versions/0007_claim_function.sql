-- Performance: the claim becomes one function call. Queue limits need the claimers
-- of a limited queue to take turns and each claim to count the jobs the previous one
-- started; that took an explicit transaction of two statements (lock the limit rows,
-- then claim) on every claim. In a VOLATILE PL/pgSQL function each statement takes a
-- new snapshot, so the lock and the claim can live in one call, in one round trip.

CREATE FUNCTION pgq.claim_jobs(claim_queues text[], claim_limit integer, claim_worker text)
RETURNS SETOF pgq.jobs
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    -- Limited queues only (unlimited ones take no lock): claimers of such a queue
    -- wait here for each other, and the claim below then sees the previous one's starts.
    PERFORM 1 FROM pgq.queues AS l
    WHERE l.queue = ANY(claim_queues) AND (l.max_running IS NOT NULL OR l.rate_limit IS NOT NULL)
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
    -- Several queues, or limits: a queue with limits gets no more than its free
    -- running slots and its remaining start rate.
    RETURN QUERY
    WITH allowance AS (
        SELECT q.name,
            least(
                claim_limit,
                CASE WHEN l.max_running IS NULL THEN claim_limit ELSE l.max_running - (
                    SELECT count(*) FROM pgq.jobs AS r WHERE r.state = 'running' AND r.queue = q.name) END,
                CASE WHEN l.rate_limit IS NULL THEN claim_limit ELSE l.rate_limit - (
                    SELECT count(*) FROM unnest(l.recent_starts) AS s(at) WHERE s.at > now() - l.rate_period) END
            ) AS slots
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
        SET state = 'running', attempt = j.attempt + 1, started_at = now(), heartbeat_at = now(),
            worker_id = claim_worker, progress = NULL
        FROM candidates
        WHERE j.id = candidates.id
        RETURNING j.*
    ), rate_counted AS (
        -- Rate-limited queues remember these starts (and forget those out of the window).
        UPDATE pgq.queues AS l
        SET recent_starts = coalesce(
                (SELECT array_agg(s.at) FROM unnest(l.recent_starts) AS s(at) WHERE s.at > now() - l.rate_period),
                '{}') || array_fill(now(), ARRAY[n.started])
        FROM (SELECT queue, count(*)::int AS started FROM claimed GROUP BY queue) AS n
        WHERE l.queue = n.queue AND l.rate_limit IS NOT NULL
    )
    SELECT * FROM claimed;
END;
$$;

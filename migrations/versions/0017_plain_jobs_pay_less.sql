-- Jobs outside workflows stop paying for them (issue 14: "costs nothing when unused").
--
-- PostgreSQL prepares each CHECK constraint, each partial index's predicate and each row
-- trigger's WHEN of pgq.jobs anew for every statement that updates jobs: it reads the
-- expression back from its stored text and plans it before the first row. Counted with
-- callgrind (benchmarks/dependency_cost.py --instructions), migration 0014's two CHECKs,
-- two indexes and trigger made the backend execute 3.7 % more instructions per plain job
-- than 0013 did when jobs are claimed and recorded 10 at a time, and 9.5 % one at a time.
-- After this, plain jobs pay nothing measurable (0.996) and 2.2 % for workflows:
--   * jobs_waiting_has_parents goes, and 'waiting' joins jobs_state_valid's list. Only
--     pgq.enqueue_dependent, pgq.settle_dependents and the retries write 'waiting', each
--     for a job with parents only (an OR with has_parents in jobs_state_valid cost 1.1 %
--     one at a time);
--   * jobs_step_valid goes: pgq.enqueue_dependent, the one writer of step, checks it;
--   * jobs_workflow_idx goes: jobs_workflow_step_idx (workflow_id, step) finds a
--     workflow's steps as well;
--   * the settling trigger's WHEN reads has_dependents alone: pgq.settle_dependents
--     already does nothing when the state stays on the same side of final.
ALTER TABLE pgq.jobs
    DROP CONSTRAINT jobs_waiting_has_parents,
    DROP CONSTRAINT jobs_step_valid;

DROP INDEX pgq.jobs_workflow_idx;

DROP TRIGGER jobs_settle_dependents ON pgq.jobs;
CREATE TRIGGER jobs_settle_dependents
    AFTER UPDATE OF state ON pgq.jobs
    FOR EACH ROW
    WHEN (NEW.has_dependents)
    EXECUTE FUNCTION pgq.settle_dependents();

CREATE OR REPLACE FUNCTION pgq.enqueue_dependent(
    workflow_name text, steps jsonb,
    edge_step integer[], edge_parent_step integer[], edge_parent_id bigint[], edge_cancel boolean[]
) RETURNS SETOF pgq.jobs
LANGUAGE plpgsql VOLATILE
-- As the schema's owner: a producer may call it (EXECUTE is granted to pgq_producer and
-- pgq_worker only) without the right to update jobs, which marking the parents and
-- cancelling a step whose parent already failed take. Every name in it is qualified.
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    wf bigint;
    ids bigint[];
    outside_ids bigint[];
    outside_states text[];
    missing bigint[];
BEGIN
    -- A step's name is checked here, where it is written, rather than by a CHECK on
    -- pgq.jobs, which every statement that updates any job would prepare again.
    IF EXISTS (SELECT FROM jsonb_to_recordset(steps) AS r(step text)
               WHERE r.step IS NOT NULL AND length(r.step) NOT BETWEEN 1 AND 200) THEN
        RAISE EXCEPTION USING ERRCODE = 'check_violation', COLUMN = 'step',
            MESSAGE = 'a step''s name must be 1 to 200 characters long';
    END IF;
    IF workflow_name IS NOT NULL THEN
        INSERT INTO pgq.workflows (name) VALUES (workflow_name) RETURNING id INTO wf;
    END IF;
    WITH locked AS (
        SELECT j.id FROM pgq.jobs AS j
        WHERE j.id IN (SELECT unnest(edge_parent_id))
        ORDER BY j.id
        FOR NO KEY UPDATE
    ), marked AS (
        UPDATE pgq.jobs AS j SET has_dependents = true
        FROM locked WHERE j.id = locked.id
        RETURNING j.id, j.state
    )
    SELECT coalesce(array_agg(id), '{}'), coalesce(array_agg(state), '{}')
    INTO outside_ids, outside_states FROM marked;
    SELECT array_agg(DISTINCT u.id ORDER BY u.id) INTO missing
    FROM unnest(edge_parent_id) AS u(id)
    WHERE u.id IS NOT NULL AND u.id <> ALL(outside_ids);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation', COLUMN = 'depends_on',
            MESSAGE = format('unknown parent jobs: %s', array_to_string(missing, ', '));
    END IF;
    ids := ARRAY(SELECT nextval(pg_get_serial_sequence('pgq.jobs', 'id'))
                 FROM generate_series(1, jsonb_array_length(steps)));

    INSERT INTO pgq.jobs (id, queue, task, args, state, priority, run_at, max_attempts,
                          workflow_id, step, has_parents, has_dependents, trace_context)
    OVERRIDING SYSTEM VALUE
    SELECT ids[s.n + 1], s.queue, s.task, s.args,
           CASE WHEN k.open > 0 OR k.broken THEN 'waiting'
                WHEN s.due > now() THEN 'scheduled' ELSE 'queued' END,
           s.priority, s.due, s.max_attempts, wf, s.step, k.step IS NOT NULL, s.has_dependents, s.trace_context
    FROM (
        SELECT r.*, coalesce(r.run_at, now() + r.delay, now()) AS due
        FROM jsonb_to_recordset(steps) AS r(
            n integer, queue text, task text, args jsonb, priority smallint, run_at timestamptz,
            delay interval, max_attempts integer, step text, has_dependents boolean, trace_context jsonb)
    ) AS s
    LEFT JOIN (
        SELECT e.step,
               count(*) FILTER (
                   WHERE e.parent_step IS NOT NULL OR o.state NOT IN ('succeeded', 'failed', 'cancelled')) AS open,
               coalesce(bool_or(e.cancel AND o.state IN ('failed', 'cancelled')), false) AS broken
        FROM unnest(edge_step, edge_parent_step, edge_parent_id, edge_cancel) AS e(step, parent_step, parent_id, cancel)
        LEFT JOIN unnest(outside_ids, outside_states) AS o(id, state) ON o.id = e.parent_id
        GROUP BY e.step
    ) AS k ON k.step = s.n
    ORDER BY s.n;

    INSERT INTO pgq.job_waits (job_id, parents_left)
    SELECT ids[k.step + 1], k.open
    FROM (
        SELECT e.step, count(*) FILTER (
                   WHERE e.parent_step IS NOT NULL OR o.state NOT IN ('succeeded', 'failed', 'cancelled')) AS open
        FROM unnest(edge_step, edge_parent_step, edge_parent_id) AS e(step, parent_step, parent_id)
        LEFT JOIN unnest(outside_ids, outside_states) AS o(id, state) ON o.id = e.parent_id
        GROUP BY e.step
    ) AS k;

    INSERT INTO pgq.job_parents (job_id, parent_id, position, cancel_on_failure)
    SELECT ids[e.step + 1], coalesce(ids[e.parent_step + 1], e.parent_id),
           row_number() OVER (PARTITION BY e.step ORDER BY e.n) - 1, e.cancel
    FROM unnest(edge_step, edge_parent_step, edge_parent_id, edge_cancel)
        WITH ORDINALITY AS e(step, parent_step, parent_id, cancel, n);

    -- A step whose existing parent already failed or was cancelled is cancelled now;
    -- the trigger passes that on to the steps that wait for it.
    WITH blocked AS (
        SELECT DISTINCT ON (p.job_id) p.job_id, o.id, o.task, o.state
        FROM pgq.job_parents AS p JOIN pgq.jobs AS o ON o.id = p.parent_id
        WHERE p.job_id = ANY(ids) AND p.cancel_on_failure AND o.state IN ('failed', 'cancelled')
        ORDER BY p.job_id, p.position
    ), cancelled AS (
        UPDATE pgq.jobs AS j
        SET state = 'cancelled', finished_at = now(),
            errors = j.errors || pgq.parent_failed_error(j.attempt, b.id, b.task, b.state)
        FROM blocked AS b
        WHERE j.id = b.job_id AND j.state = 'waiting'
        RETURNING j.id, b.id AS parent_id
    )
    UPDATE pgq.job_waits AS w SET cancelled_by = c.parent_id FROM cancelled AS c WHERE w.job_id = c.id;

    RETURN QUERY SELECT * FROM pgq.jobs WHERE id = ANY(ids) ORDER BY id;
END;
$$;

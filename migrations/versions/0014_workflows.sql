-- Workflows: jobs that wait for other jobs (chains, fan-out, fan-in).
--
-- A dependent job is 'waiting' until every parent is final. The bookkeeping is in plain
-- columns and one edge table, so it can be read with SQL:
--   pgq.job_parents       one row per edge (job_id waits for parent_id), in the order the
--                         parents were given (position);
--   pgq.job_waits         per job with parents: how many are not final yet, and which
--                         failed parent cancelled it (a narrow row of its own: a fan-in
--                         of 10,000 parents updates it 10,000 times);
--   jobs.has_parents      the job has parents (it can wait; its worker reads their results);
--   jobs.has_dependents   some job waits for this one (the trigger below only fires then,
--                         so jobs outside workflows pay nothing on claim and completion);
--   jobs.workflow_id/step the workflow a job is a step of, and the step's name;
--   pgq.workflows         one row per workflow enqueued as a whole.

ALTER TABLE pgq.jobs DROP CONSTRAINT jobs_state_valid;
ALTER TABLE pgq.jobs ADD CONSTRAINT jobs_state_valid CHECK (
    state IN ('waiting', 'scheduled', 'queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled'));
COMMENT ON TABLE pgq.jobs IS 'One row per job. States: waiting, scheduled, queued, running, retrying, succeeded, failed, cancelled.';

ALTER TABLE pgq.jobs
    ADD COLUMN workflow_id bigint,
    ADD COLUMN step text,
    ADD COLUMN has_parents boolean NOT NULL DEFAULT false,
    ADD COLUMN has_dependents boolean NOT NULL DEFAULT false;
ALTER TABLE pgq.jobs
    ADD CONSTRAINT jobs_step_valid CHECK (step IS NULL OR length(step) BETWEEN 1 AND 200),
    -- Only a job with parents can wait.
    ADD CONSTRAINT jobs_waiting_has_parents CHECK (state <> 'waiting' OR has_parents);

COMMENT ON COLUMN pgq.jobs.workflow_id IS 'The workflow (pgq.workflows) this job is a step of; NULL for a lone job.';
COMMENT ON COLUMN pgq.jobs.step IS 'The step''s name within its workflow (unique there).';
COMMENT ON COLUMN pgq.jobs.has_parents IS 'The job waits for other jobs (pgq.job_parents); pgq.job_waits counts those not final.';
COMMENT ON COLUMN pgq.jobs.has_dependents IS 'Some job waits for this one: its final state settles them (pgq.settle_dependents).';

CREATE INDEX jobs_workflow_idx ON pgq.jobs (workflow_id, id) WHERE workflow_id IS NOT NULL;
CREATE UNIQUE INDEX jobs_workflow_step_idx ON pgq.jobs (workflow_id, step) WHERE workflow_id IS NOT NULL;

CREATE TABLE pgq.workflows (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT workflows_name_valid CHECK (length(name) BETWEEN 1 AND 200)
);

COMMENT ON TABLE pgq.workflows IS 'One row per workflow; its steps are the jobs with this workflow_id.';

-- No foreign keys to pgq.jobs: their checks would cost every deleted job a lookup, and
-- TRUNCATE pgq.jobs would need CASCADE. pgq.enqueue_dependent checks that the parents
-- exist (and locks them), and job_prune_finished deletes a pruned job's edges.
CREATE TABLE pgq.job_parents (
    job_id            bigint  NOT NULL,
    parent_id         bigint  NOT NULL,
    position          integer NOT NULL,
    -- false: the job runs once this parent is final, whatever its outcome.
    cancel_on_failure boolean NOT NULL DEFAULT true,

    PRIMARY KEY (job_id, parent_id),
    CONSTRAINT job_parents_not_self CHECK (job_id <> parent_id)
);

CREATE INDEX job_parents_parent_idx ON pgq.job_parents (parent_id);

COMMENT ON TABLE pgq.job_parents IS 'Dependencies: job_id waits until parent_id is final. position orders a job''s parents.';

-- The count a waiting job waits on, apart from its (wide, often rewritten) jobs row:
-- a narrow row on a page with room, so that the many updates of a big fan-in stay HOT
-- and cheap. cancelled_by: the failed or cancelled parent that cancelled the job (a
-- retry of that parent makes it wait again; a job cancelled by hand stays cancelled).
CREATE TABLE pgq.job_waits (
    job_id       bigint  PRIMARY KEY,
    parents_left integer NOT NULL,
    cancelled_by bigint,

    CONSTRAINT job_waits_parents_left_valid CHECK (parents_left >= 0)
)
WITH (fillfactor = 50, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_cost_delay = 0);

COMMENT ON TABLE pgq.job_waits IS 'Per job with parents: parents_left (not final yet) and cancelled_by (the failed parent that cancelled it).';

-- The error entry of a job cancelled because a parent failed or was cancelled.
CREATE FUNCTION pgq.parent_failed_error(attempt integer, parent_id bigint, parent_task text, parent_state text)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_array(jsonb_build_object(
        'attempt', attempt, 'at', now(), 'type', 'ParentFailed',
        'message', format('parent job %s (%s) ended %s', parent_id, parent_task, parent_state),
        'parent', parent_id, 'traceback', NULL))
$$;

-- A parent reached a final state, or left one (a retry). Fires only for jobs with
-- dependents (the trigger's WHEN), in the transaction that changed the parent.
--
-- Exactly once: each dependent's count in pgq.job_waits is decremented by an UPDATE of
-- its row. Parents finishing at the same moment on different workers queue on that row
-- lock, and READ COMMITTED evaluates each UPDATE on the row version the previous one
-- committed, so exactly one of them takes the count to 0 and makes the job ready. A parent's final state is written once per attempt by a guarded statement (the
-- outcome batch, the rescuer, a cancel), so no parent is counted twice, whichever path
-- finished it, and a worker killed before its commit changed nothing.
CREATE FUNCTION pgq.settle_dependents() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    was_final boolean := OLD.state IN ('succeeded', 'failed', 'cancelled');
    now_final boolean := NEW.state IN ('succeeded', 'failed', 'cancelled');
    broke boolean := NEW.state IN ('failed', 'cancelled');
    cancelled_ids bigint[];
    woken integer;
BEGIN
    IF now_final AND NOT was_final THEN
        -- Count this parent off, then move the jobs it decides: the last parent makes a
        -- waiting job ready, a failed one cancels it (unless it runs after failures).
        WITH counted AS (
            UPDATE pgq.job_waits AS w
            SET parents_left = w.parents_left - 1
            FROM pgq.job_parents AS p
            WHERE p.parent_id = NEW.id AND w.job_id = p.job_id
            RETURNING w.job_id, w.parents_left, broke AND p.cancel_on_failure AS cancels
        ), settled AS (
            UPDATE pgq.jobs AS c
            SET state = CASE WHEN k.cancels THEN 'cancelled' WHEN c.run_at > now() THEN 'scheduled' ELSE 'queued' END,
                finished_at = CASE WHEN k.cancels THEN now() END,
                errors = CASE
                    WHEN k.cancels THEN c.errors || pgq.parent_failed_error(c.attempt, NEW.id, NEW.task, NEW.state)
                    ELSE c.errors END
            FROM counted AS k
            WHERE c.id = k.job_id AND c.state = 'waiting' AND (k.cancels OR k.parents_left = 0)
            RETURNING c.id, c.queue, c.state
        )
        -- Wake the workers of the queues that have a job ready now (PostgreSQL folds
        -- repeated notifications), and remember which jobs this parent cancelled.
        SELECT array_agg(id) FILTER (WHERE state = 'cancelled'),
               count(*) FILTER (WHERE state IN ('queued', 'scheduled') AND pg_notify('pgq_jobs', queue) IS NULL)
        INTO cancelled_ids, woken
        FROM settled;
        IF cancelled_ids IS NOT NULL THEN
            UPDATE pgq.job_waits SET cancelled_by = NEW.id WHERE job_id = ANY(cancelled_ids);
        END IF;
    ELSIF was_final AND NOT now_final THEN
        -- Retried: the dependents count this parent again. Those a failed parent
        -- cancelled wait again, unless a parent they need is still failed or cancelled,
        -- and so do those that were ready but have not started (retried with it, or
        -- run after failures).
        UPDATE pgq.job_waits AS w
        SET parents_left = w.parents_left + 1
        FROM pgq.job_parents AS p
        WHERE p.parent_id = NEW.id AND w.job_id = p.job_id;
        WITH revived AS (
            UPDATE pgq.jobs AS c
            SET state = 'waiting', finished_at = NULL
            FROM pgq.job_parents AS p
            JOIN pgq.job_waits AS w ON w.job_id = p.job_id
            WHERE p.parent_id = NEW.id AND c.id = p.job_id
              AND (c.state IN ('queued', 'scheduled')
                   OR (c.state = 'cancelled' AND w.cancelled_by IS NOT NULL AND NOT EXISTS (
                       SELECT FROM pgq.job_parents AS q JOIN pgq.jobs AS o ON o.id = q.parent_id
                       WHERE q.job_id = c.id AND q.parent_id <> NEW.id AND q.cancel_on_failure
                         AND o.state IN ('failed', 'cancelled'))))
            RETURNING c.id
        )
        UPDATE pgq.job_waits AS w SET cancelled_by = NULL FROM revived WHERE w.job_id = revived.id;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_settle_dependents
    AFTER UPDATE OF state ON pgq.jobs
    FOR EACH ROW
    WHEN (NEW.has_dependents AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION pgq.settle_dependents();

-- Each workflow with its steps counted by state, and its own state: running while a
-- step is not final, then succeeded (every step did), failed (a step failed) or
-- cancelled.
CREATE VIEW pgq.workflow_status AS
SELECT
    w.id,
    w.name,
    w.created_at,
    CASE
        WHEN count(j.id) FILTER (WHERE j.finished_at IS NULL) > 0 THEN 'running'
        WHEN count(j.id) FILTER (WHERE j.state <> 'succeeded') = 0 THEN 'succeeded'
        WHEN count(j.id) FILTER (WHERE j.state = 'failed') > 0 THEN 'failed'
        ELSE 'cancelled' END AS state,
    count(j.id) AS steps,
    count(j.id) FILTER (WHERE j.state = 'waiting') AS waiting,
    count(j.id) FILTER (WHERE j.state IN ('scheduled', 'queued')) AS queued,
    count(j.id) FILTER (WHERE j.state IN ('running', 'retrying')) AS running,
    count(j.id) FILTER (WHERE j.state = 'succeeded') AS succeeded,
    count(j.id) FILTER (WHERE j.state = 'failed') AS failed,
    count(j.id) FILTER (WHERE j.state = 'cancelled') AS cancelled,
    CASE WHEN count(j.id) FILTER (WHERE j.finished_at IS NULL) = 0 THEN max(j.finished_at) END AS finished_at
FROM pgq.workflows AS w
LEFT JOIN pgq.jobs AS j ON j.workflow_id = w.id
GROUP BY w.id;

COMMENT ON VIEW pgq.workflow_status IS 'Workflows with their steps counted by state; state is running until every step is final.';

-- Enqueue jobs that wait for other jobs, in one call: a workflow's steps (and its row
-- in pgq.workflows when workflow_name is given), or one job with depends_on.
--   steps: a JSON array, element i for step i: n (= i), the job_insert_many fields
--          (queue, task, args, priority, run_at, delay, max_attempts), its step name
--          and has_dependents (some later element waits for it);
--   edges: four arrays, one entry per edge: the waiting step (its index), the parent's
--          index in steps or else an existing job's id, and whether a failed parent
--          cancels the step (else it runs once its parents are final).
-- The caller (pgq/db/workflows.py) has checked every value and ordered the steps so
-- that parents come first, which rules out cycles. Existing parents are locked (in id
-- order) and marked has_dependents before their states are read, so a parent finishing
-- meanwhile is either seen final here or settles the new job through the trigger.
-- Unknown parents raise foreign_key_violation (SQLSTATE 23503, column depends_on)
-- naming them, and nothing is written.
CREATE FUNCTION pgq.enqueue_dependent(
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
                          workflow_id, step, has_parents, has_dependents)
    OVERRIDING SYSTEM VALUE
    SELECT ids[s.n + 1], s.queue, s.task, s.args,
           CASE WHEN k.open > 0 OR k.broken THEN 'waiting'
                WHEN s.due > now() THEN 'scheduled' ELSE 'queued' END,
           s.priority, s.due, s.max_attempts, wf, s.step, k.step IS NOT NULL, s.has_dependents
    FROM (
        SELECT r.*, coalesce(r.run_at, now() + r.delay, now()) AS due
        FROM jsonb_to_recordset(steps) AS r(
            n integer, queue text, task text, args jsonb, priority smallint, run_at timestamptz,
            delay interval, max_attempts integer, step text, has_dependents boolean)
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

REVOKE EXECUTE ON FUNCTION pgq.enqueue_dependent(text, jsonb, integer[], integer[], bigint[], boolean[]) FROM PUBLIC;

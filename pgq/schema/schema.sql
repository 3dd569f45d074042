-- The whole current pgq schema. Migrations (migrations/versions/) must produce exactly
-- this; tests/test_schema.py (test_migrated_database_equals_the_schema_file) compares
-- the two. Change both together.

CREATE SCHEMA IF NOT EXISTS pgq;

-- The checks of single columns of pgq.jobs are domains, not CHECK constraints on the
-- table: PostgreSQL plans a table's CHECK constraints anew for each statement that
-- writes to it, while a domain's constraint is planned once per session and checked
-- only when a column of that type is written (migration 0018). They keep the names
-- they had as table constraints.
-- Names: a length test plus an unbounded character class. (A bounded regex such as
-- {1,128} accepts the same names but is several times slower, on every write.)
CREATE DOMAIN pgq.job_queue AS text
    CONSTRAINT jobs_queue_valid CHECK (length(VALUE) BETWEEN 1 AND 128 AND VALUE ~ '^[A-Za-z0-9_.:-]+$');
CREATE DOMAIN pgq.job_task AS text
    CONSTRAINT jobs_task_valid CHECK (length(VALUE) BETWEEN 1 AND 255 AND VALUE ~ '^[A-Za-z_][A-Za-z0-9_.:-]*$');
CREATE DOMAIN pgq.job_args AS jsonb CONSTRAINT jobs_args_is_object CHECK (jsonb_typeof(VALUE) = 'object');
-- Only a job with parents waits: the writers of 'waiting' (pgq.enqueue_dependent,
-- pgq.settle_dependents, the retries) see to it, not a CHECK on the table (migration 0017).
CREATE DOMAIN pgq.job_state AS text CONSTRAINT jobs_state_valid CHECK (
    VALUE IN ('waiting', 'scheduled', 'queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled'));
CREATE DOMAIN pgq.job_errors AS jsonb CONSTRAINT jobs_errors_is_array CHECK (jsonb_typeof(VALUE) = 'array');
CREATE DOMAIN pgq.job_idempotency_key AS text
    CONSTRAINT jobs_idempotency_key_valid CHECK (length(VALUE) BETWEEN 1 AND 255);
CREATE DOMAIN pgq.job_progress AS jsonb CONSTRAINT jobs_progress_is_object CHECK (jsonb_typeof(VALUE) = 'object');
-- Every time within what Python reads back in any session time zone (pgq/_times.py).
CREATE DOMAIN pgq.job_time AS timestamptz
    CONSTRAINT jobs_times_in_range CHECK (VALUE >= '1969-12-31 00:00:00+00' AND VALUE < '9999-01-02 00:00:00+00');

CREATE TABLE pgq.jobs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue           pgq.job_queue NOT NULL DEFAULT 'default',
    task            pgq.job_task NOT NULL,
    args            pgq.job_args NOT NULL DEFAULT '{}'::jsonb,
    state           pgq.job_state NOT NULL DEFAULT 'queued',
    priority        smallint    NOT NULL DEFAULT 0,
    run_at          pgq.job_time NOT NULL DEFAULT now(),
    attempt         integer     NOT NULL DEFAULT 0,
    max_attempts    integer     NOT NULL DEFAULT 5,
    result          jsonb,
    errors          pgq.job_errors NOT NULL DEFAULT '[]'::jsonb,
    idempotency_key pgq.job_idempotency_key,
    created_at      pgq.job_time NOT NULL DEFAULT now(),
    started_at      pgq.job_time,
    finished_at     pgq.job_time,
    heartbeat_at    pgq.job_time,
    worker_id       text,
    cancel_requested_at pgq.job_time,
    progress        pgq.job_progress,
    workflow_id     bigint,
    step            text,
    has_parents     boolean     NOT NULL DEFAULT false,
    has_dependents  boolean     NOT NULL DEFAULT false,
    trace_context   jsonb,

    CONSTRAINT jobs_attempts_valid CHECK (max_attempts >= 1 AND attempt >= 0 AND attempt <= max_attempts),
    -- A job is finished exactly when its state is final.
    CONSTRAINT jobs_finished_iff_final CHECK (
        (finished_at IS NOT NULL) = (state IN ('succeeded', 'failed', 'cancelled'))),
    -- A running job always says which worker holds it, since when, and that it is alive.
    CONSTRAINT jobs_running_is_owned CHECK (
        state <> 'running'
        OR (worker_id IS NOT NULL AND started_at IS NOT NULL AND heartbeat_at IS NOT NULL)),
    -- Only a job that ran can have succeeded; a result belongs to a succeeded job.
    CONSTRAINT jobs_result_only_when_succeeded CHECK (result IS NULL OR state = 'succeeded')
)
-- Every state change writes a new row version: vacuum early and often, and leave room
-- on each page so that most updates stay HOT.
WITH (
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);

COMMENT ON COLUMN pgq.jobs.cancel_requested_at IS 'Set by cancel() on a running job; its worker stops it and records cancelled.';
COMMENT ON COLUMN pgq.jobs.progress IS 'Latest progress a running task reported: {"percent", "message", "at"}.';

COMMENT ON COLUMN pgq.jobs.workflow_id IS 'The workflow (pgq.workflows) this job is a step of; NULL for a lone job.';
COMMENT ON COLUMN pgq.jobs.step IS 'The step''s name within its workflow (unique there).';
COMMENT ON COLUMN pgq.jobs.has_parents IS 'The job waits for other jobs (pgq.job_parents); pgq.job_waits counts those not final.';
COMMENT ON COLUMN pgq.jobs.has_dependents IS 'Some job waits for this one: its final state settles them (pgq.settle_dependents).';
COMMENT ON COLUMN pgq.jobs.trace_context IS 'The enqueuer''s trace context (W3C traceparent, tracestate) when it was traced; the worker''s span continues it.';

COMMENT ON TABLE pgq.jobs IS 'One row per job. States: waiting, scheduled, queued, running, retrying, succeeded, failed, cancelled.';

-- The claim index holds only ready jobs, in the order the claim query takes them:
-- scheduled and retrying rows live in jobs_due_idx until they are due.
CREATE INDEX jobs_claim_idx ON pgq.jobs (queue, priority, run_at, id) WHERE state = 'queued';

-- Finds scheduled/retrying jobs whose time has come, oldest first.
CREATE INDEX jobs_due_idx ON pgq.jobs (run_at) WHERE state IN ('scheduled', 'retrying');

-- An idempotency key is unique among jobs that are not final.
CREATE UNIQUE INDEX jobs_idempotency_key_idx ON pgq.jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL AND state IN ('scheduled', 'queued', 'running', 'retrying');

-- Any job by its idempotency key, finished ones too (the dashboard's search).
CREATE INDEX jobs_idempotency_key_any_idx ON pgq.jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- Listing and pruning finished jobs, and the "what is running where" question.
CREATE INDEX jobs_finished_at_idx ON pgq.jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX jobs_running_idx ON pgq.jobs (worker_id) WHERE state = 'running';

-- One NOTIFY per transaction and queue on pgq_jobs for workers (Postgres folds
-- duplicates within a transaction); the payload is just the queue name. Scheduled
-- inserts notify too, so an idle worker can shorten its sleep to the new job's run_at.
-- New jobs: one notification per row for statements of up to 100 rows (a job enqueued
-- through the API appears on the streams at once); a larger bulk insert sends one
-- {"queue", "inserted", "xid"} per queue instead, as per-row notifications would more
-- than double the cost of a bulk enqueue. Workers' pgq_jobs notification is unchanged.
CREATE FUNCTION pgq.notify_jobs_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pgq_jobs', q.queue)
    FROM (SELECT DISTINCT queue FROM inserted) AS q;
    IF (SELECT count(*) FROM (SELECT 1 FROM inserted LIMIT 101) AS first) <= 100 THEN
        PERFORM pg_notify('pgq_job_events',
            '{"id":' || i.id || ',"queue":"' || i.queue || '","task":"' || i.task
            || '","state":"' || i.state || '","attempt":' || i.attempt
            || ',"progress":false,"xid":' || pg_current_xact_id() || '}')
        FROM inserted AS i;
    ELSE
        PERFORM pg_notify('pgq_job_events',
            '{"queue":"' || q.queue || '","inserted":' || q.n || ',"xid":' || pg_current_xact_id() || '}')
        FROM (SELECT queue, count(*) AS n FROM inserted GROUP BY queue) AS q;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_notify_inserted
    AFTER INSERT ON pgq.jobs
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION pgq.notify_jobs_inserted();

CREATE TABLE pgq.workers (
    id           text        PRIMARY KEY,
    host         text        NOT NULL,
    pid          integer     NOT NULL,
    queues       text[]      NOT NULL,
    concurrency  integer     NOT NULL CHECK (concurrency >= 1),
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    schedules    text[]      NOT NULL DEFAULT '{}'
);

COMMENT ON TABLE pgq.workers IS 'One row per live worker process, refreshed by its heartbeat; stale rows are removed by the leader.';
COMMENT ON COLUMN pgq.workers.schedules IS 'The schedules this worker''s app declares; a schedule no live worker declares does not run.';

-- At most one row per name: the worker holding an unexpired lease runs that
-- maintenance. A lease (not an advisory lock) survives PgBouncer transaction pooling.
CREATE TABLE pgq.leases (
    name       text        PRIMARY KEY,
    worker_id  text        NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

COMMENT ON TABLE pgq.leases IS 'Leader election: the worker named here runs maintenance until expires_at.';
CREATE TABLE pgq.queues (
    queue         text        PRIMARY KEY,
    max_running   integer,
    rate_limit    integer,
    rate_period   interval,
    -- Start times within the last rate_period: a sliding window, so no interval of
    -- that length ever holds more than rate_limit starts.
    recent_starts timestamptz[] NOT NULL DEFAULT '{}',
    updated_at    timestamptz NOT NULL DEFAULT now(),
    paused_at     timestamptz,

    CONSTRAINT queues_queue_valid CHECK (queue ~ '^[A-Za-z0-9_.:-]{1,128}$'),
    CONSTRAINT queues_max_running_valid CHECK (max_running IS NULL OR max_running >= 1),
    CONSTRAINT queues_rate_valid CHECK (
        (rate_limit IS NULL AND rate_period IS NULL)
        OR (rate_limit BETWEEN 1 AND 10000 AND rate_period > interval '0'))
);

COMMENT ON TABLE pgq.queues IS 'Per-queue limits: at most max_running jobs running, at most rate_limit starts per rate_period. Change at runtime.';
COMMENT ON COLUMN pgq.queues.paused_at IS 'When the queue was paused (NULL: not paused); workers claim nothing from a paused queue.';

-- Per queue and state: how many jobs, how long the oldest ready one has waited (since
-- it became ready: its run_at, or its creation when run_at was in the past), and
-- whether the queue is paused.
CREATE VIEW pgq.queue_stats AS
SELECT
    s.queue,
    s.state,
    s.jobs,
    s.oldest_queued_age,
    EXISTS (SELECT 1 FROM pgq.queues AS q WHERE q.queue = s.queue AND q.paused_at IS NOT NULL) AS paused
FROM (
    SELECT queue, state, count(*) AS jobs,
           CASE WHEN state = 'queued' THEN now() - min(greatest(run_at, created_at)) END AS oldest_queued_age
    FROM pgq.jobs
    GROUP BY queue, state
) AS s;

COMMENT ON VIEW pgq.queue_stats IS 'Job counts per queue and state, with the age of the oldest ready job and whether the queue is paused.';


-- Every change of a job's state or progress is announced on pgq_job_events, for the
-- HTTP API's wait and event streams and app.wait, while any of them watches (below).
-- Payload on pgq_job_events, one per changed row:
--   {"id", "queue", "task", "state", "attempt", "progress", "xid"[, "progress_value"]}
-- "progress" is true when the progress changed; "progress_value" is then the new value
-- (omitted only when it is larger than 7000 bytes: a reader reads the row instead).
-- "xid" is the writing transaction, so a reader can tell whether a row it read already
-- holds this change (pg_visible_in_snapshot). The text is built by concatenation,
-- several times faster than json_build_object: the CHECK constraints on queue and task
-- names and on state leave no character that JSON would need to escape.
CREATE FUNCTION pgq.notify_job_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    progress_changed boolean := OLD.progress IS DISTINCT FROM NEW.progress;
    progress_text text;
BEGIN
    -- The trigger's WHEN asks only whether anyone watches (comparing the old row with
    -- the new there was planned again for every statement): a row whose state and
    -- progress stayed as they were ends here.
    IF NOT progress_changed AND OLD.state IS NOT DISTINCT FROM NEW.state THEN
        RETURN NULL;
    END IF;
    progress_text := NEW.progress::text;
    PERFORM pg_notify('pgq_job_events',
        '{"id":' || NEW.id || ',"queue":"' || NEW.queue || '","task":"' || NEW.task
        || '","state":"' || NEW.state || '","attempt":' || NEW.attempt
        || ',"progress":' || progress_changed || ',"xid":' || pg_current_xact_id()
        || CASE
            WHEN NOT progress_changed OR octet_length(progress_text) > 7000 THEN ''
            ELSE ',"progress_value":' || coalesce(progress_text, 'null')
        END || '}');
    RETURN NULL;
END;
$$;

-- Only while someone watches: a session that LISTENs on pgq_job_events registers in
-- pgq.job_event_watchers (pgq.watch_job_events(), in the transaction of its LISTEN).
-- Without a watcher, an UPDATE of state or progress costs one lookup per statement
-- (jobs_watch_check) and a setting read per row, instead of a notification per row.
-- No change is lost to the handshake: every such statement takes a shared advisory lock
-- before it looks for watchers, and a registration takes the same lock exclusively
-- before it commits. So a transaction that found no watcher commits before the
-- registration does (and the watcher's first read, made after it, sees the change),
-- and one that looks after the registration notifies. New jobs (jobs_notify_inserted)
-- are always announced: enqueues run in callers' transactions, which a registration
-- must never wait for.
CREATE TABLE pgq.job_event_watchers (
    pid   integer     PRIMARY KEY,
    since timestamptz NOT NULL DEFAULT now()
);

-- Register this session (the one that LISTENs) as a watcher; drop the rows of sessions
-- that are gone (a watcher that died without a word only costs notifications).
CREATE FUNCTION pgq.watch_job_events() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM pgq.job_event_watchers AS w
    WHERE NOT EXISTS (SELECT FROM pg_stat_activity AS a WHERE a.pid = w.pid);
    INSERT INTO pgq.job_event_watchers (pid) VALUES (pg_backend_pid())
    ON CONFLICT (pid) DO UPDATE SET since = now();
    -- Wait for the transactions that already looked and found no watcher.
    PERFORM pg_advisory_xact_lock(1886483816, 2);
END;
$$;

-- Before each statement that may change a state or a progress: is anyone watching?
-- The answer holds for the statement's rows (pgq.job_events_watched, transaction-local).
CREATE FUNCTION pgq.check_job_watchers() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(1886483816, 2);
    PERFORM set_config('pgq.job_events_watched',
        CASE WHEN EXISTS (SELECT FROM pgq.job_event_watchers) THEN 'on' ELSE 'off' END, true);
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_watch_check
    BEFORE UPDATE OF state, progress ON pgq.jobs
    FOR EACH STATEMENT EXECUTE FUNCTION pgq.check_job_watchers();

-- UPDATE OF and WHEN keep heartbeats and other updates free of any trigger call, and
-- every update free of one while nobody watches.
CREATE TRIGGER jobs_notify_changed
    AFTER UPDATE OF state, progress ON pgq.jobs
    FOR EACH ROW
    WHEN (current_setting('pgq.job_events_watched', true) = 'on')
    EXECUTE FUNCTION pgq.notify_job_changed();

-- ANALYZE keeps the most common (queue, state) pairs with their frequencies.
CREATE STATISTICS pgq.jobs_queue_state (mcv) ON queue, state FROM pgq.jobs;

CREATE TABLE pgq.schedules (
    name          text        PRIMARY KEY,
    task          text        NOT NULL,
    queue         text        NOT NULL DEFAULT 'default',
    args          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    priority      smallint    NOT NULL DEFAULT 0,
    max_attempts  integer     NOT NULL DEFAULT 5,
    cron          text,
    every_seconds integer,
    timezone      text        NOT NULL DEFAULT 'UTC',
    missed        text        NOT NULL DEFAULT 'run_once',
    next_run_at   timestamptz NOT NULL,
    last_run_at   timestamptz,
    last_job_id   bigint,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    declared_at   timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT schedules_name_valid CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_.:-]{0,199}$'),
    CONSTRAINT schedules_task_valid CHECK (task ~ '^[A-Za-z_][A-Za-z0-9_.:-]{0,254}$'),
    CONSTRAINT schedules_queue_valid CHECK (queue ~ '^[A-Za-z0-9_.:-]{1,128}$'),
    CONSTRAINT schedules_args_is_object CHECK (jsonb_typeof(args) = 'object'),
    CONSTRAINT schedules_max_attempts_valid CHECK (max_attempts >= 1),
    -- Exactly one way of repeating: a cron expression or a number of seconds.
    CONSTRAINT schedules_cron_xor_every CHECK ((cron IS NULL) <> (every_seconds IS NULL)),
    CONSTRAINT schedules_every_positive CHECK (every_seconds IS NULL OR every_seconds >= 1),
    CONSTRAINT schedules_missed_valid CHECK (missed IN ('run_once', 'skip'))
);

COMMENT ON TABLE pgq.schedules IS 'Periodic jobs: the leader enqueues task when next_run_at comes, then advances it.';
COMMENT ON COLUMN pgq.schedules.next_run_at IS 'The next tick (UTC); the run enqueued for it has run_at = this tick.';
COMMENT ON COLUMN pgq.schedules.last_run_at IS 'The tick of the last run enqueued; last_job_id is its job.';
COMMENT ON COLUMN pgq.schedules.missed IS 'After downtime: run_once (one catch-up run for the latest missed tick) or skip.';
COMMENT ON COLUMN pgq.schedules.declared_at IS 'When a worker last declared this schedule (registration, or its last declaring worker leaving).';

-- Every schedule with the live workers that declare it: orphaned ones are not run.
CREATE VIEW pgq.schedule_status AS
SELECT
    s.*,
    coalesce(d.workers, '{}') AS declared_by,
    d.workers IS NULL AS orphaned,
    greatest(s.declared_at, d.last_beat) AS last_declared_at
FROM pgq.schedules AS s
LEFT JOIN LATERAL (
    SELECT array_agg(w.id ORDER BY w.id) AS workers, max(w.heartbeat_at) AS last_beat
    FROM pgq.workers AS w
    WHERE s.name = ANY(w.schedules)
) AS d ON true;

COMMENT ON VIEW pgq.schedule_status IS 'Schedules with the live workers declaring them; an orphaned one (no live worker) is not run.';

-- The claim: one call, one round trip (see job_claim in queries.sql). In a VOLATILE
-- PL/pgSQL function each statement takes a new snapshot, so the claim that follows
-- the lock of the limited queues' rows counts the jobs the previous claimer started.
CREATE FUNCTION pgq.claim_jobs(claim_queues text[], claim_limit integer, claim_worker text)
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

-- pgq.enqueue(): enqueue from SQL, in the caller's transaction, from any client, any
-- language, a psql script or a trigger on the user's own table (the outbox pattern).
--
-- It checks its arguments as the Python API does (pgq/spec.py validate), with the
-- same limits, and refuses bad ones with SQLSTATE 22023 (invalid_parameter_value): the
-- message names the parameter, and so does the error's COLUMN field. NUL characters and
-- lone surrogates cannot reach it: text and jsonb refuse them before any call. A NULL
-- argument means its default, as None does in Python. An idempotency key held by a job
-- that is not final returns that job's id instead of adding one. The insert wakes the
-- workers at commit (the jobs_notify_inserted trigger), and a rollback leaves nothing.
-- SECURITY INVOKER: the caller needs INSERT on pgq.jobs (pgq_producer, pgq_worker).
CREATE FUNCTION pgq.enqueue(
    task text,
    args jsonb DEFAULT '{}',
    queue text DEFAULT 'default',
    priority bigint DEFAULT 0,
    run_at timestamptz DEFAULT NULL,
    delay interval DEFAULT NULL,
    max_attempts bigint DEFAULT 5,
    idempotency_key text DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    job_args jsonb := coalesce(args, '{}');
    job_queue text := coalesce(queue, 'default');
    job_priority bigint := coalesce(priority, 0);
    job_max_attempts bigint := coalesce(max_attempts, 5);
    due timestamptz;
    bad record;
    job_id bigint;
BEGIN
    IF task IS NULL OR length(task) NOT BETWEEN 1 AND 255 OR task !~ '^[A-Za-z_][A-Za-z0-9_.:-]*$' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', COLUMN = 'task',
            MESSAGE = format('task name %s is invalid: start with a letter or ''_'', then up to 254 '
                             'letters, digits, ''_'', ''.'', '':'' or ''-''', coalesce(quote_literal(task), 'NULL'));
    END IF;
    IF jsonb_typeof(job_args) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', COLUMN = 'args',
            MESSAGE = format('job arguments must be a JSON object of name to value, got %s', jsonb_typeof(job_args));
    END IF;
    IF job_args ? '' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', COLUMN = 'args',
            MESSAGE = 'argument names must be non-empty strings, got ''''';
    END IF;
    -- Values Python could not read back. Each needs more than 200 characters of JSON
    -- (101 levels of nesting, a float beyond 1.8e308, an integer of 4001 digits), so
    -- smaller arguments skip the walk.
    IF octet_length(job_args::text) > 200 THEN
        WITH RECURSIVE walk(path, value, depth) AS (
            SELECT format('argument %L', a.key), a.value, 0 FROM jsonb_each(job_args) AS a
            UNION ALL
            SELECT w.path || c.step, c.value, w.depth + 1
            FROM walk AS w
            CROSS JOIN LATERAL (
                SELECT format('[%L]', o.key) AS step, o.value
                FROM jsonb_each(CASE WHEN jsonb_typeof(w.value) = 'object' THEN w.value END) AS o
                UNION ALL
                SELECT format('[%s]', e.n - 1), e.value
                FROM jsonb_array_elements(CASE WHEN jsonb_typeof(w.value) = 'array' THEN w.value END)
                    WITH ORDINALITY AS e(value, n)
            ) AS c
            WHERE w.depth <= 100
        ), judged AS (
            SELECT path, depth, jsonb_typeof(value) AS kind,
                   CASE WHEN jsonb_typeof(value) = 'number' THEN value::text END AS number
            FROM walk
        )
        SELECT CASE
                WHEN number !~ '[.]' AND length(ltrim(number, '-')) > 4000
                    THEN path || ' is an integer of more than 4000 digits, which pgq cannot read back'
                WHEN depth > 100 AND kind NOT IN ('string', 'boolean', 'null') AND coalesce(number ~ '[.]', true)
                    THEN path || ' is nested deeper than 100 levels'
                WHEN number ~ '[.]' AND abs(number::numeric) > 1.7976931348623157e308
                    THEN path || ' is a number beyond the range of a float, which Python reads as infinity'
            END AS message
        INTO bad
        FROM judged
        WHERE (number !~ '[.]' AND length(ltrim(number, '-')) > 4000)
           OR (depth > 100 AND kind NOT IN ('string', 'boolean', 'null') AND coalesce(number ~ '[.]', true))
           OR (number ~ '[.]' AND abs(number::numeric) > 1.7976931348623157e308)
        LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', COLUMN = 'args', MESSAGE = bad.message;
        END IF;
    END IF;
    IF length(job_queue) NOT BETWEEN 1 AND 128 OR job_queue !~ '^[A-Za-z0-9_.:-]+$' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', COLUMN = 'queue',
            MESSAGE = format('queue name %L is invalid: use 1-128 letters, digits, ''_'', ''.'', '':'' or ''-''',
                             job_queue);
    END IF;
    IF job_priority NOT BETWEEN -32768 AND 32767 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', COLUMN = 'priority',
            MESSAGE = format('priority must be an integer between -32768 and 32767, got %s', job_priority);
    END IF;
    IF job_max_attempts NOT BETWEEN 1 AND 1000000 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', COLUMN = 'max_attempts',
            MESSAGE = format('max_attempts must be an integer between 1 and 1000000, got %s', job_max_attempts);
    END IF;
    IF run_at IS NOT NULL AND delay IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', COLUMN = 'delay',
            MESSAGE = 'give either run_at or delay, not both';
    END IF;
    -- The year as written: in the session's time zone (Python: in the datetime's offset).
    IF run_at IS NOT NULL AND (extract(year FROM run_at) NOT BETWEEN 1970 AND 9998
                               OR run_at < '1969-12-31 00:00:00+00' OR run_at >= '9999-01-02 00:00:00+00') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', COLUMN = 'run_at',
            MESSAGE = format('run_at must be in the years 1970 to 9998, got %s', run_at);
    END IF;
    IF delay < interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', COLUMN = 'delay',
            MESSAGE = format('delay must not be negative, got %s', delay);
    END IF;
    IF delay > interval '36500 days' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', COLUMN = 'delay',
            MESSAGE = format('delay must be at most 36500 days, got %s', delay);
    END IF;
    IF idempotency_key IS NOT NULL AND length(idempotency_key) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', COLUMN = 'idempotency_key',
            MESSAGE = format('idempotency_key must be a string of 1-255 characters, got %L', idempotency_key);
    END IF;
    due := coalesce(run_at, now() + delay, now());
    -- As job_insert in queries.sql: a key held by a job that is not final is that job;
    -- if that job finished in between, the insert is tried again.
    FOR try IN 1..10 LOOP
        INSERT INTO pgq.jobs (queue, task, args, state, priority, run_at, max_attempts, idempotency_key)
        VALUES (job_queue, enqueue.task, job_args, CASE WHEN due > now() THEN 'scheduled' ELSE 'queued' END,
                job_priority, due, job_max_attempts, enqueue.idempotency_key)
        ON CONFLICT (idempotency_key)
            WHERE idempotency_key IS NOT NULL AND state IN ('scheduled', 'queued', 'running', 'retrying')
            DO NOTHING
        RETURNING id INTO job_id;
        IF job_id IS NOT NULL THEN
            RETURN job_id;
        END IF;
        SELECT j.id INTO job_id FROM pgq.jobs AS j
        WHERE j.idempotency_key = enqueue.idempotency_key
          AND j.state IN ('scheduled', 'queued', 'running', 'retrying');
        IF job_id IS NOT NULL THEN
            RETURN job_id;
        END IF;
    END LOOP;
    RAISE EXCEPTION USING ERRCODE = 'serialization_failure', COLUMN = 'idempotency_key',
        MESSAGE = format('could not enqueue with idempotency_key %L: it kept changing hands', idempotency_key);
END;
$$;

-- Only the roles that may insert jobs may call it (`pgq roles` grants it to pgq_producer
-- and pgq_worker).
REVOKE EXECUTE ON FUNCTION pgq.enqueue(text, jsonb, text, bigint, timestamptz, interval, bigint, text) FROM PUBLIC;

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
-- dependents (the trigger's WHEN), in the transaction that changed the parent; a change
-- that stays on the same side of final does nothing.
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
    WHEN (NEW.has_dependents)
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
--          (queue, task, args, priority, run_at, delay, max_attempts, trace_context),
--          its step name and has_dependents (some later element waits for it);
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

REVOKE EXECUTE ON FUNCTION pgq.enqueue_dependent(text, jsonb, integer[], integer[], bigint[], boolean[]) FROM PUBLIC;

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

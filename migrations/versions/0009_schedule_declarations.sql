-- Schedules outlive their app: a schedule runs only while a live worker declares it.
-- Each worker row lists the schedules its app declares (written with every heartbeat's
-- upsert, so a row recreated after an outage declares them again); a schedule remembers
-- when it was last declared, stamped at registration and when its last declaring worker
-- leaves, so an orphan says since when nobody runs it.

ALTER TABLE pgq.workers ADD COLUMN schedules text[] NOT NULL DEFAULT '{}';

COMMENT ON COLUMN pgq.workers.schedules IS 'The schedules this worker''s app declares; a schedule no live worker declares does not run.';

ALTER TABLE pgq.schedules ADD COLUMN declared_at timestamptz NOT NULL DEFAULT now();

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

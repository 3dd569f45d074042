"""Job change notifications (pgq_job_events) are sent only while a watcher is registered,
and the registration handshake loses no change (migration 0015)."""

from __future__ import annotations

import threading
import time

import psycopg

from pgq._queries import QUERIES

_CLAIM = "UPDATE pgq.jobs SET state = 'running', attempt = 1, started_at = now(), heartbeat_at = now(), worker_id = 'w'"


def _payloads(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    return [n.payload for n in conn.notifies(timeout=0.3) if n.channel == "pgq_job_events"]


def _waiting_on_a_lock(dsn: str, pid: int) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return row is not None and row[0] == "Lock"


def test_state_changes_notify_only_a_registered_watcher(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as writer, psycopg.connect(dsn, autocommit=True) as listener:
        writer.execute("INSERT INTO pgq.jobs (task) VALUES ('t')")
        listener.execute("LISTEN pgq_job_events")
        _payloads(listener)  # the insert is always announced
        writer.execute(_CLAIM)
        assert _payloads(listener) == []  # a bare LISTEN is no watcher
        listener.execute(QUERIES["job_events_listen"])
        writer.execute("UPDATE pgq.jobs SET state = 'succeeded', finished_at = now()")
        writer.execute("UPDATE pgq.jobs SET heartbeat_at = now()")  # not a change anyone sees
        (payload,) = _payloads(listener)
        assert '"state":"succeeded"' in payload
        assert writer.execute("SELECT pid FROM pgq.job_event_watchers").fetchall() == [(listener.info.backend_pid,)]


def test_a_registration_waits_for_a_change_made_while_nobody_watched(dsn: str) -> None:
    """The change found no watcher; the registration commits after it, so the watcher's
    first read sees it (and no change falls between the read and the notifications)."""
    with psycopg.connect(dsn, autocommit=True) as writer, psycopg.connect(dsn, autocommit=True) as listener:
        writer.execute("INSERT INTO pgq.jobs (task) VALUES ('t')")
        with writer.transaction():
            writer.execute(_CLAIM)  # looked for watchers: none
            registered = threading.Thread(target=listener.execute, args=(QUERIES["job_events_listen"],))
            registered.start()
            deadline = time.monotonic() + 10
            while not _waiting_on_a_lock(dsn, listener.info.backend_pid):
                assert time.monotonic() < deadline, "the registration did not wait for the open change"
                time.sleep(0.02)
            assert registered.is_alive()
        registered.join(10)
        assert not registered.is_alive()
        assert listener.execute("SELECT state FROM pgq.jobs").fetchone() == ("running",)


def test_a_watcher_that_is_gone_is_dropped_at_the_next_registration(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as gone:
        gone.execute(QUERIES["job_events_listen"])
        gone_pid = gone.info.backend_pid
    with psycopg.connect(dsn, autocommit=True) as listener:
        deadline = time.monotonic() + 10  # the closed session's backend exits on its own time
        while listener.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (gone_pid,)).fetchone():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        listener.execute(QUERIES["job_events_listen"])
        pids = [row[0] for row in listener.execute("SELECT pid FROM pgq.job_event_watchers").fetchall()]
        assert pids == [listener.info.backend_pid] and gone_pid not in pids


def test_a_watched_update_that_leaves_state_and_progress_as_they_were_sends_nothing(dsn: str) -> None:
    """The trigger fires for every UPDATE naming state or progress while watched
    (migration 0019); the function tells a real change from a rewrite of the same values."""
    with psycopg.connect(dsn, autocommit=True) as writer, psycopg.connect(dsn, autocommit=True) as listener:
        writer.execute("INSERT INTO pgq.jobs (task) VALUES ('t')")
        listener.execute("LISTEN pgq_job_events")
        listener.execute(QUERIES["job_events_listen"])
        _payloads(listener)  # the insert
        writer.execute("UPDATE pgq.jobs SET state = state, progress = progress")
        assert _payloads(listener) == []
        writer.execute("""UPDATE pgq.jobs SET progress = '{"percent": 50}'""")
        (payload,) = _payloads(listener)
        assert '"progress":true' in payload and '"progress_value":{"percent": 50}' in payload

"""The schema itself: invariants, the claim plan, the stats view, and migrations."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import psycopg
import pytest

from pgq._db import SCHEMA_HEAD
from pgq._queries import schema_sql
from pgq.migrate import migrate
from tests.conftest import ROOT, pgq_cli

Conn = psycopg.Connection[tuple[Any, ...]]


def _insert(conn: Conn, **columns: Any) -> None:
    names = ", ".join(columns)  # test-only: fixed column names from this file
    marks = ", ".join(["%s"] * len(columns))
    conn.execute(f"INSERT INTO pgq.jobs (task, {names}) VALUES ('t', {marks})", list(columns.values()))


@pytest.mark.parametrize(
    ("columns", "constraint"),
    [
        ({"state": "done"}, "jobs_state_valid"),
        ({"state": "succeeded"}, "jobs_finished_iff_final"),
        ({"state": "queued", "finished_at": "2030-01-01"}, "jobs_finished_iff_final"),
        ({"state": "running"}, "jobs_running_is_owned"),
        ({"attempt": 6, "max_attempts": 5}, "jobs_attempts_valid"),
        ({"result": "1"}, "jobs_result_only_when_succeeded"),
        ({"args": "[1]"}, "jobs_args_is_object"),
        ({"queue": "no spaces"}, "jobs_queue_valid"),
    ],
)
def test_check_constraints_reject_impossible_rows(conn: Conn, columns: dict[str, Any], constraint: str) -> None:
    with pytest.raises(psycopg.errors.CheckViolation) as info:
        _insert(conn, **columns)
    assert info.value.diag.constraint_name == constraint


def _claim_query_prepared(conn: Conn, branch: int) -> str:
    """PREPARE claim(...) AS one of the queries inside pgq.claim_jobs, as installed:
    EXPLAIN of a function call does not show the plans of the statements it runs."""
    row = conn.execute("SELECT prosrc FROM pg_proc WHERE oid = 'pgq.claim_jobs'::regproc").fetchone()
    assert row is not None
    query = row[0].split("RETURN QUERY")[branch + 1].split(";", 1)[0].strip()
    for n, name in enumerate(("claim_queues", "claim_limit", "claim_worker", "claim_at"), start=1):
        query = re.sub(rf"\b{name}\b", f"${n}", query)
    return f"PREPARE claim(text[], integer, text, timestamptz) AS {query}"


@pytest.mark.parametrize("branch", [0, 1], ids=["one_unlimited_queue", "limits_or_several_queues"])
def test_claim_uses_the_partial_index_with_100k_future_jobs_ahead_in_priority(conn: Conn, branch: int) -> None:
    # 100k scheduled jobs with a better priority than the ready ones: they must not
    # stand in front of the ready rows in the index the claim walks.
    conn.execute(
        "INSERT INTO pgq.jobs (task, state, priority, run_at) "
        "SELECT 't', 'scheduled', -100, now() + interval '1 day' FROM generate_series(1, 100000)"
    )
    conn.execute("INSERT INTO pgq.jobs (task, state) SELECT 't', 'queued' FROM generate_series(1, 50)")
    conn.execute("ANALYZE pgq.jobs")
    with conn.transaction(force_rollback=True):
        conn.execute(_claim_query_prepared(conn, branch))
        explain = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE claim(ARRAY['default'], 10, 'x', now())"
        row = conn.execute(explain).fetchone()
    assert row is not None
    plan = json.dumps(row[0])
    assert '"Index Name": "jobs_claim_idx"' in plan

    def nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
        return [node, *(n for child in node.get("Plans", []) for n in nodes(child))]

    jobs_scans = [n["Node Type"] for n in nodes(row[0][0]["Plan"]) if n.get("Relation Name") == "jobs"]
    assert jobs_scans and all(t in {"Index Scan", "Index Only Scan", "ModifyTable"} for t in jobs_scans)

    (scan,) = [n for n in nodes(row[0][0]["Plan"]) if n.get("Index Name") == "jobs_claim_idx"]
    assert scan["Actual Rows"] == 10
    assert scan.get("Rows Removed by Filter", 0) == 0
    assert scan["Shared Hit Blocks"] + scan.get("Shared Read Blocks", 0) < 50


def test_queue_stats_counts_per_queue_and_state_with_oldest_queued_age(conn: Conn) -> None:
    conn.execute(
        "INSERT INTO pgq.jobs (task, queue, run_at, created_at) "
        "VALUES ('t', 'a', now() - interval '1 hour', now() - interval '2 hours'), ('t', 'a', now(), now())"
    )
    conn.execute("INSERT INTO pgq.jobs (task, queue, state, finished_at) VALUES ('t', 'b', 'cancelled', now())")
    # Ready since it was created: a run_at given in the past is not time spent waiting.
    conn.execute("INSERT INTO pgq.jobs (task, queue, run_at) VALUES ('t', 'c', '1970-01-01 00:00+00')")
    rows = conn.execute(
        "SELECT queue, state, jobs, extract(epoch FROM oldest_queued_age)::int FROM pgq.queue_stats ORDER BY 1, 2"
    ).fetchall()
    assert rows[0][:3] == ("a", "queued", 2) and 3590 < rows[0][3] < 3700
    assert rows[1] == ("b", "cancelled", 1, None)
    assert rows[2][:3] == ("c", "queued", 1) and 0 <= rows[2][3] < 60


def test_table_is_tuned_for_a_high_churn_queue(conn: Conn) -> None:
    row = conn.execute("SELECT reloptions FROM pg_class WHERE oid = 'pgq.jobs'::regclass").fetchone()
    assert row is not None
    options = dict(o.split("=") for o in row[0])
    assert options["fillfactor"] == "80"
    assert float(options["autovacuum_vacuum_scale_factor"]) <= 0.01


_SNAPSHOT = {
    "columns": """SELECT table_name, column_name, data_type, column_default, is_nullable, is_identity
                  FROM information_schema.columns WHERE table_schema = 'pgq' AND table_name <> 'alembic_version'
                  ORDER BY 1, ordinal_position""",
    "constraints": """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
                      WHERE connamespace = 'pgq'::regnamespace AND conrelid <> 'pgq.alembic_version'::regclass
                      ORDER BY 1, 2""",
    "indexes": """SELECT indexname, indexdef FROM pg_indexes
                  WHERE schemaname = 'pgq' AND tablename <> 'alembic_version' ORDER BY 1""",
    "relations": """SELECT relname, relkind, reloptions, obj_description(oid, 'pg_class') FROM pg_class
                    WHERE relnamespace = 'pgq'::regnamespace AND relname NOT LIKE 'alembic_version%'
                    ORDER BY 1""",
    "views": "SELECT viewname, definition FROM pg_views WHERE schemaname = 'pgq' ORDER BY 1",
    "functions": """SELECT proname, pg_get_functiondef(oid) FROM pg_proc
                    WHERE pronamespace = 'pgq'::regnamespace ORDER BY 1""",
    "triggers": """SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger
                   WHERE tgrelid = 'pgq.jobs'::regclass AND NOT tgisinternal ORDER BY 1""",
    "statistics": """SELECT stxname, pg_get_statisticsobjdef(oid) FROM pg_statistic_ext
                     WHERE stxnamespace = 'pgq'::regnamespace ORDER BY 1""",
}


def _snapshot(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(dsn) as conn:
        return {name: conn.execute(query).fetchall() for name, query in _SNAPSHOT.items()}


def test_migrated_database_equals_the_schema_file(dsn: str, empty_dsn: str) -> None:
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute(schema_sql())
        conn.execute("CREATE TABLE pgq.alembic_version (version_num text)")  # the snapshot skips it
    migrated, from_file = _snapshot(dsn), _snapshot(empty_dsn)
    for part in _SNAPSHOT:
        assert migrated[part] == from_file[part], part
    assert len(migrated["indexes"]) >= 5 and migrated["triggers"]


def test_migrate_twice_is_a_no_op(dsn: str) -> None:
    assert migrate(dsn) == SCHEMA_HEAD
    assert migrate(dsn) == SCHEMA_HEAD


def test_two_concurrent_migrations_both_succeed(empty_dsn: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pgq", "--database-url", empty_dsn, "migrate"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    with psycopg.connect(empty_dsn) as conn:
        assert conn.execute("SELECT version_num FROM pgq.alembic_version").fetchall() == [(SCHEMA_HEAD,)]


def test_migrate_command_reports_an_unreachable_database_in_one_line() -> None:
    result = pgq_cli("migrate", dsn="postgresql://nobody@127.0.0.1:1/nothing")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("pgq: error: cannot connect to PostgreSQL")
    assert "Traceback" not in result.stderr


def test_migrating_to_domains_keeps_the_rows_the_views_grants_and_the_checks_names(empty_dsn: str) -> None:
    """Migration 0018 makes the single-column checks domains: it changes the columns'
    types under the views, which it makes again with their grants."""
    from alembic import command
    from psycopg import sql

    from pgq.migrate import _alembic_config

    command.upgrade(_alembic_config(empty_dsn), "0017")
    role = f"pgq_view_reader_{os.getpid()}"
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        try:
            conn.execute(
                sql.SQL("GRANT SELECT ON pgq.queue_stats, pgq.workflow_status TO {}").format(sql.Identifier(role))
            )
            conn.execute(
                "INSERT INTO pgq.jobs (task, queue, state, run_at, args) "
                "VALUES ('mail.send', 'mail', 'scheduled', '2030-01-01 00:00+00', '{\"to\": 1}')"
            )
            migrate(empty_dsn)
            grants = conn.execute(
                "SELECT table_name, privilege_type FROM information_schema.role_table_grants "
                "WHERE grantee = %s ORDER BY 1",
                [role],
            ).fetchall()
            assert grants == [("queue_stats", "SELECT"), ("workflow_status", "SELECT")]
            row = conn.execute("SELECT task, queue, state, run_at::text, args FROM pgq.jobs").fetchone()
            assert row == ("mail.send", "mail", "scheduled", "2030-01-01 00:00:00+00", {"to": 1})
            assert conn.execute("SELECT queue, state, jobs FROM pgq.queue_stats").fetchall() == [
                ("mail", "scheduled", 1)
            ]
            for change, constraint in [
                ("state = 'done'", "jobs_state_valid"),
                ("run_at = 'infinity'", "jobs_times_in_range"),
                ("queue = 'no spaces'", "jobs_queue_valid"),
                ("args = '[1]'", "jobs_args_is_object"),
            ]:
                with pytest.raises(psycopg.errors.CheckViolation) as info:
                    conn.execute(f"UPDATE pgq.jobs SET {change}")  # test-only: fixed text from this list
                assert info.value.diag.constraint_name == constraint
        finally:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))

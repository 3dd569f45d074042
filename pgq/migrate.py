"""`pgq migrate`: bring a database's pgq schema to the revision this pgq needs."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config

from pgq import _db

log = logging.getLogger("pgq.migrate")


def _alembic_config(dsn: str) -> Config:
    import pgq.migrations

    config = Config()
    config.set_main_option("script_location", str(Path(pgq.migrations.__file__).parent))
    config.attributes["dsn"] = dsn
    return config


def migrate(dsn: str) -> str:
    """Upgrade to head; safe to run twice and from several processes at once.

    Returns the revision the database is at afterwards.
    """
    _db.connect(dsn).close()  # a clear one-line error beats alembic's traceback
    command.upgrade(_alembic_config(dsn), "head")
    with _db.connect(dsn) as conn:
        _db.check_schema(conn)
    log.info("database is at pgq schema revision %s", _db.SCHEMA_HEAD)
    return _db.SCHEMA_HEAD


def create_roles(dsn: str) -> list[str]:
    """Create (or update) the pgq_producer, pgq_worker and pgq_reader roles' grants."""
    from pgq._queries import schema_sql

    with _db.connect(dsn, autocommit=False) as conn:
        _db.check_schema(conn)
        conn.execute(schema_sql("roles.sql").encode())
        conn.commit()
    return ["pgq_producer", "pgq_worker", "pgq_reader"]

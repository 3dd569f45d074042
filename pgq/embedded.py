"""The embedded PostgreSQL used when no DATABASE_URL is given.

It lets `pgq` run on a laptop with nothing installed: the `pgserver` package (the
``embedded`` extra) ships a PostgreSQL build in a wheel. The server keeps running after
the process exits, so the worker, the API and the CLI share one database; every real
deployment points DATABASE_URL at its own Postgres instead.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from pgq.errors import ConfigError

log = logging.getLogger("pgq.embedded")

_started: dict[Path, str] = {}


def embedded_dsn(data_dir: Path) -> str:
    """Start (or find running) the embedded server for ``data_dir``; return its DSN."""
    data_dir = data_dir.expanduser().resolve()
    if data_dir in _started:
        return _started[data_dir]
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless.
            warnings.simplefilter("ignore")
            from pgserver.postgres_server import get_server
    except ImportError:
        raise ConfigError(
            "DATABASE_URL is not set and the embedded PostgreSQL is not installed: "
            "set DATABASE_URL, or install it with: pip install 'pgq[embedded]'"
        ) from None
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir, cleanup_mode=None)
    dsn = server.get_uri()
    log.info("DATABASE_URL is not set: using the embedded PostgreSQL in %s", data_dir)
    _started[data_dir] = dsn
    return dsn

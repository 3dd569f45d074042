"""The embedded PostgreSQL used when no DATABASE_URL is given.

It lets `pgq` run on a laptop with nothing installed: the `pgserver` package (the
``embedded`` extra) ships a PostgreSQL build in a wheel. The server keeps running after
the process exits, so the worker, the API and the CLI share one database
(`pgq embedded status` / `pgq embedded stop`); every real deployment points
DATABASE_URL at its own Postgres instead.

Run as root, pgserver runs the server as a system user ``pgserver`` and makes every
directory above the data folder and above its own binaries readable and traversable by
everyone (``chmod g+rx,o+rx``). pgq refuses to let it widen anything: it starts the
server only when those directories already allow it, and otherwise says which ones
stand in the way.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import stat
import warnings
from pathlib import Path
from typing import Any

from pgq.errors import ConfigError

log = logging.getLogger("pgq.embedded")

_started: dict[Path, str] = {}
_TRAVERSABLE = stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
INSTALL_HINT = "pip install 'pgq-queue[embedded]'"


def _pgserver() -> Any:
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless.
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError:
        raise ConfigError(
            f"DATABASE_URL is not set and the embedded PostgreSQL is not installed: "
            f"set DATABASE_URL, or install it with: {INSTALL_HINT}"
        ) from None
    return pgserver


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def would_widen(data_dir: Path, binaries: Path) -> list[Path]:
    """The existing directories pgserver, run as root, would open to every user."""
    found: list[Path] = []
    for start in (data_dir, binaries):
        for prefix in start.parents:
            if prefix.exists() and prefix.stat().st_mode & _TRAVERSABLE != _TRAVERSABLE and prefix not in found:
                found.append(prefix)
    return found


def _refuse_widening(data_dir: Path, binaries: Path) -> None:
    if not running_as_root() or not (closed := would_widen(data_dir, binaries)):
        return
    listed = ", ".join(f"{p} ({stat.filemode(p.stat().st_mode)})" for p in closed)
    raise ConfigError(
        "refusing to start the embedded PostgreSQL as root: it runs as the system user 'pgserver' and would "
        f"make these directories readable by every user (chmod o+rx): {listed}. Set DATABASE_URL, run pgq as "
        "another user, or set PGQ_DATA_DIR (and install pgq) under directories that are already o+rx, "
        "like /var/lib/pgq"
    )


def embedded_dsn(data_dir: Path) -> str:
    """Start (or find running) the embedded server for ``data_dir``; return its DSN."""
    data_dir = data_dir.expanduser().resolve()
    if data_dir in _started:
        return _started[data_dir]
    pgserver = _pgserver()
    binaries = Path(pgserver.__file__).parent / "pginstall" / "bin"
    _refuse_widening(data_dir, binaries)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    _refuse_widening(data_dir, binaries)  # folders just made under a restrictive umask
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(data_dir, cleanup_mode=None)
    dsn: str = server.get_uri()
    log.info("DATABASE_URL is not set: using the embedded PostgreSQL in %s", data_dir)
    _started[data_dir] = dsn
    return dsn


@dataclasses.dataclass(frozen=True)
class EmbeddedStatus:
    data_dir: Path
    pid: int | None
    """The postmaster's process id; None when no server runs for this data folder."""
    dsn: str | None


def status(data_dir: Path) -> EmbeddedStatus:
    """Whether a server runs for ``data_dir``, without starting one."""
    data_dir = data_dir.expanduser().resolve()
    info = _pgserver().utils.PostmasterInfo.read_from_pgdata(data_dir) if data_dir.exists() else None
    if info is None or not info.is_running():
        return EmbeddedStatus(data_dir, None, None)
    return EmbeddedStatus(data_dir, int(info.pid), str(info.get_uri()))


def stop(data_dir: Path) -> bool:
    """Stop the server of ``data_dir`` (fast shutdown); False when none was running."""
    current = status(data_dir)
    if current.pid is None:
        return False
    pgserver = _pgserver()
    owner = "pgserver" if running_as_root() else None
    pgserver.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=current.data_dir, user=owner)
    _started.pop(current.data_dir, None)
    return True

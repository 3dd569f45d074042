"""Where log lines go: stderr for commands, a file for the demo."""

from __future__ import annotations

import logging
import os
import sys

from pgq.logs import formatter
from pgq.settings import LogFormat

LOG_FORMATS = ("human", "json")

SERVICES = {"worker", "api"}


def log_to(handler: logging.Handler, level: str, log_format: LogFormat = "human") -> None:
    """Send every log line (and Python warnings) to ``handler`` at ``level``, as text or JSON."""
    handler.setFormatter(formatter(log_format))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    for noisy in ("alembic", "pgserver", "psycopg.pool"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def log_format(given: str | None) -> LogFormat:
    """--log-format, else PGQ_LOG_FORMAT, else human."""
    value = (given or os.environ.get("PGQ_LOG_FORMAT", "") or "human").strip().lower()
    if value not in LOG_FORMATS:
        print(f"pgq: error: PGQ_LOG_FORMAT must be human or json, got {value!r}", file=sys.stderr)
        raise SystemExit(2)  # a configuration error, like every other bad setting
    return "json" if value == "json" else "human"

"""Where log lines go: stderr for commands, a file for the demo."""

from __future__ import annotations

import logging

SERVICES = {"worker", "api"}


def log_to(handler: logging.Handler, level: str) -> None:
    """Send every log line (and Python warnings) to ``handler`` at ``level``."""
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    for noisy in ("alembic", "pgserver", "psycopg.pool"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))

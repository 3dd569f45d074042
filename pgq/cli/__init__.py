"""The `pgq` command line: migrate, worker, enqueue, enqueue-workflow, jobs, workflows, workflow, queues, pause,
resume, schedules, cancel, retry, api, bench, demo, embedded."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from pgq.cli.loading import load_app
from pgq.cli.logs import SERVICES, log_format, log_to
from pgq.cli.parser import build_parser
from pgq.errors import ConfigError, PgqError

__all__ = ["build_parser", "load_app", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = args.log_level or ("INFO" if args.command in SERVICES else "WARNING")
    log_to(logging.StreamHandler(sys.stderr), level, log_format(args.log_format))
    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url
    if getattr(args, "listen_url", None):
        os.environ["PGQ_LISTEN_URL"] = args.listen_url  # read by the App's settings, like DATABASE_URL
    if getattr(args, "read_url", None):
        os.environ["PGQ_READ_DATABASE_URL"] = args.read_url  # read by the API's settings
    try:
        return int(args.func(args))
    except PgqError as exc:
        print(f"pgq: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    except (ValueError, TypeError) as exc:
        # Bad input to the library (a malformed argument, an invalid option value).
        print(f"pgq: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pgq: interrupted (Ctrl-C)", file=sys.stderr)
        return 130

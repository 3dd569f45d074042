"""The benchmark scripts' command lines, declared the same way everywhere.

Each script names its options with their defaults (``jobs=10_000``, or
``rate=(200.0, "steady producer jobs/s")`` with a help text); every option becomes
``--name`` typed like its default, a ``True``/``False`` default a flag, and the help says
the default. ``server_dsn()`` is the one rule for which server a script uses.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

DEFAULT_SERVER = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"

Default = int | float | str | bool
Option = Default | tuple[Default, str]


def parser(doc: str | None, **options: Option) -> argparse.ArgumentParser:
    """An argument parser with one ``--name`` per option (``_`` in a name becomes ``-``)."""
    built = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0])
    for name, option in options.items():
        default, text = option if isinstance(option, tuple) else (option, "")
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            built.add_argument(flag, action="store_true", default=default, help=text or None)
        else:
            shown = f"{default:,}" if isinstance(default, int) else str(default)
            built.add_argument(flag, type=type(default), default=default, help=f"{text} (default {shown})".lstrip())
    return built


def parse(doc: str | None, argv: Sequence[str] | None = None, **options: Option) -> argparse.Namespace:
    return parser(doc, **options).parse_args(argv)


def server_dsn() -> str:
    """DATABASE_URL, else the local server on 127.0.0.1:5432 as postgres; scripts create
    and drop their own database on it."""
    return os.environ.get("DATABASE_URL") or DEFAULT_SERVER

"""How commands print: aligned tables, one-line summaries, local times."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from pgq.job import Job, JobState
from pgq.schedule import ScheduleState


def local_time(when: dt.datetime | None) -> str:
    """In the machine's time zone; in UTC (said so) when that zone cannot hold it (year 1
    west of UTC, year 9999 east of it: pgq reads times beyond Python's range clamped)."""
    if when is None:
        return "-"
    try:
        return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, ValueError):
        return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


SUMMARY_WIDTH = 60


def cut(text: str, width: int = SUMMARY_WIDTH) -> str:
    """One line of at most ``width`` characters, with an ellipsis when something was cut."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def last_error(job: Job) -> str:
    if not job.errors:
        return ""
    last = job.errors[-1]
    return cut(f"{last.get('type')}: {last.get('message')}")


def print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def show_job(job: Job) -> None:
    data = job.to_dict()
    errors = data.pop("errors")
    width = max(map(len, data))
    for key, value in data.items():
        print(f"{key:>{width}}: {json.dumps(value) if isinstance(value, dict | list) else value}")
    for error in errors:
        when, kind, message = error.get("at"), error.get("type"), error.get("message")
        print(f"\n-- attempt {error.get('attempt')} failed at {when}: {kind}: {message}")
        print((error.get("traceback") or "").rstrip())


def summary(job: Job) -> str:
    """The list's last column: the result, the live progress, or the last error."""
    if job.state == JobState.SUCCEEDED:
        return cut(json.dumps(job.result))
    if job.state == JobState.RUNNING and job.progress:
        return cut(f"{job.progress['percent']:g}% {job.progress.get('message') or ''}")
    return last_error(job)


def in_zone(when: dt.datetime | None, zone: str) -> str:
    """In the schedule's zone, or in UTC when that zone cannot hold it (see local_time)."""
    from zoneinfo import ZoneInfo

    if when is None:
        return "-"
    try:
        return when.astimezone(ZoneInfo(zone)).isoformat(sep=" ", timespec="seconds")
    except (OverflowError, ValueError):
        return when.astimezone(dt.UTC).isoformat(sep=" ", timespec="seconds")


def declared_by(s: ScheduleState) -> str:
    """Whether a live worker declares the schedule, or since when none does (it does not run)."""
    if s.orphaned:
        return f"ORPHANED: no live worker since {in_zone(s.last_declared_at, s.timezone)}"
    count = len(s.declared_by)
    return f"{count} live worker{'s' if count != 1 else ''}"


class Listable(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


L = TypeVar("L", bound=Listable)


def print_list(
    items: Sequence[L], *, as_json: bool, empty: str, header: Sequence[str], row: Callable[[L], Sequence[str]]
) -> None:
    """A listing command's output: JSON (every field), a line saying there is nothing, or a table."""
    if as_json:
        print(json.dumps([item.to_dict() for item in items], indent=2))
    elif not items:
        print(empty)
    else:
        print_table([list(header), *(list(row(item)) for item in items)])

"""When a schedule fires: cron expressions in a time zone, and fixed intervals.

cronsim parses and matches cron expressions (we never parse cron by hand); it is fed
naive wall-clock times, and this module decides how each wall-clock match becomes an
instant, which is where daylight saving time bites. The rules are Debian cron's:

- An expression with a fixed minute and hour (``30 2 * * *``, ``0 9-17 * * 1-5``) is
  a wall-clock job. A time skipped by a spring-forward runs at the first instant after
  the gap (02:30 → 03:00); a time that happens twice at a fall-back runs once, at its
  first occurrence.
- An expression with ``*`` in the minute or hour field (``*/5 * * * *``) is an
  interval job: it fires at every instant whose local time matches, so in a repeated
  hour it fires in both, and in a skipped hour there is nothing to fire.

Every result is an aware UTC datetime; the database stores UTC.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# Larger than any UTC offset change at a transition: a wall-clock match this far
# before (or after) another can still be the earlier instant.
_MARGIN = dt.timedelta(hours=3)
_MINUTE = dt.timedelta(minutes=1)
_NO_DST = frozenset({"UTC", "Etc/UTC"})


def normalize_cron(expr: str) -> str:
    """The 5-field form of ``expr`` (macros expanded), or ValueError saying what is wrong."""
    if not isinstance(expr, str):
        raise ValueError(f"cron must be a string like '*/5 * * * *', got {expr!r}")
    text = " ".join(expr.split())
    text = MACROS.get(text.lower(), text)
    fields = len(text.split())
    if fields != 5:
        raise ValueError(
            f"cron expression {expr!r} has {fields} fields; it needs 5 (minute hour day-of-month month "
            f"day-of-week) or one of {', '.join(MACROS)}. For seconds, use every="
        )
    try:
        next(CronSim(text, dt.datetime(2000, 1, 1)))
    except CronSimError as exc:
        raise ValueError(f"cron expression {expr!r} is invalid: {exc}") from None
    except StopIteration:
        raise ValueError(f"cron expression {expr!r} never matches a date") from None
    return text


def _is_wall_clock(expr: str) -> bool:
    minute, hour = expr.split()[:2]
    return not minute.startswith("*") and not hour.startswith("*")


def _exists(local: dt.datetime, zone: ZoneInfo) -> bool:
    aware = local.replace(tzinfo=zone)
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == local


def _instants(local: dt.datetime, zone: ZoneInfo, wall_clock: bool) -> list[dt.datetime]:
    """The UTC instants at which the naive local time ``local`` fires in ``zone``."""
    if _exists(local, zone):
        first = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
        second = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
        return [first] if wall_clock or first == second else [first, second]
    if not wall_clock:
        return []
    gap_end = local
    while not _exists(gap_end, zone):  # transitions fall on whole minutes
        gap_end += _MINUTE
    return [gap_end.replace(tzinfo=zone).astimezone(UTC)]


def next_cron_tick(expr: str, zone: ZoneInfo, after: dt.datetime) -> dt.datetime:
    """The first instant strictly after ``after`` at which ``expr`` fires in ``zone``."""
    wall_clock = _is_wall_clock(expr)
    margin = dt.timedelta(0) if zone.key in _NO_DST else _MARGIN
    start = after.astimezone(zone).replace(tzinfo=None) - margin
    best: tuple[dt.datetime, dt.datetime] | None = None  # (instant, its local time)
    for local in CronSim(expr, start):
        if best is not None and local > best[1] + margin:
            break
        for instant in _instants(local, zone, wall_clock):
            if instant > after and (best is None or instant < best[0]):
                best = (instant, local)
    if best is None:
        raise ValueError(f"cron expression {expr!r} has no run after {after.isoformat()}")
    return best[0]


def next_interval_tick(every_seconds: int, after: dt.datetime) -> dt.datetime:
    """The first multiple of ``every_seconds`` since 1970-01-01 UTC strictly after ``after``.

    Counting from a fixed origin makes every worker compute the same ticks, whenever
    it starts: ``every=60`` fires on the minute, ``every=3600`` on the hour (UTC).
    """
    step = dt.timedelta(seconds=every_seconds)
    return EPOCH + ((after - EPOCH) // step + 1) * step

"""Jinja filters: times (relative and absolute), durations, JSON, and the SVG chart.

Everything returns plain text that the template escapes, except ``sparkline``, which
builds its SVG from numbers only (no job data can reach it).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from markupsafe import Markup


def ago(when: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """'12 s ago', '3 min ago', 'in 2 h' (future times)."""
    if when is None:
        return "—"
    now = now or dt.datetime.now(dt.UTC)
    delta = (now - when).total_seconds()
    text = duration(abs(delta))
    return f"{text} ago" if delta >= 0 else f"in {text}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} d"


def absolute(when: dt.datetime | None) -> str:
    if when is None:
        return ""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(when: dt.datetime | None) -> str:
    return when.astimezone(dt.UTC).isoformat() if when is not None else ""


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def percent(value: float) -> str:
    return f"{value * 100:.1f} %"


def sparkline(values: list[int], width: int = 180, height: int = 28) -> Markup:
    """Jobs finished per minute as bars, oldest left; drawn on the server (no script)."""
    top = max(values) if values else 0
    step = width / max(len(values), 1)
    bars = []
    for i, value in enumerate(values):
        if value <= 0:
            continue
        bar = max(1.0, (value / top) * (height - 2))
        bars.append(
            f'<rect x="{i * step:.1f}" y="{height - bar:.1f}" width="{max(step - 1, 1):.1f}" height="{bar:.1f}">'
            f"<title>{value} jobs, {len(values) - 1 - i} min ago</title></rect>"
        )
    label = f"jobs finished per minute over the last hour, at most {top}"
    return Markup(  # noqa: S704 - built from integers only
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{label}"><line x1="0" y1="{height - 0.5}" x2="{width}" y2="{height - 0.5}"/>'
        + "".join(bars)
        + "</svg>"
    )


FILTERS = {
    "ago": ago,
    "duration": duration,
    "absolute": absolute,
    "iso": iso,
    "pretty_json": pretty_json,
    "percent": percent,
    "sparkline": sparkline,
}

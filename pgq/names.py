"""Valid task and queue names, checked where a name enters pgq (tasks, settings,
schedules, enqueue) and by the API's schemas.

A module of its own so that every one of those can import it without importing each
other (task.py and app.py imported each other through these checks)."""

from __future__ import annotations

import re

TASK_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,254}$")
QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


_ACCEPTED_TASKS: set[str] = set()
_ACCEPTED_QUEUES: set[str] = set()
_ACCEPTED_MAX = 10_000
"""Names already checked, so that enqueueing the same few names skips the regex."""


def check_task_name(name: str) -> str:
    if type(name) is str and name in _ACCEPTED_TASKS:
        return name
    if not isinstance(name, str) or not TASK_NAME.fullmatch(name):
        raise ValueError(
            f"task name {name!r} is invalid: start with a letter or '_', then up to 254 "
            "letters, digits, '_', '.', ':' or '-'"
        )
    if len(_ACCEPTED_TASKS) < _ACCEPTED_MAX:
        _ACCEPTED_TASKS.add(name)
    return name


def check_queue_name(queue: str) -> str:
    if type(queue) is str and queue in _ACCEPTED_QUEUES:
        return queue
    if not isinstance(queue, str) or not QUEUE_NAME.fullmatch(queue):
        raise ValueError(f"queue name {queue!r} is invalid: use 1-128 letters, digits, '_', '.', ':' or '-'")
    if len(_ACCEPTED_QUEUES) < _ACCEPTED_MAX:
        _ACCEPTED_QUEUES.add(queue)
    return queue

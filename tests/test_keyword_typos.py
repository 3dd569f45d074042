"""A misspelled keyword argument is refused with a TypeError naming it, and writes nothing.

The App's keyword options are TypedDicts (one definition shared by the sync and async
methods): mypy checks typed callers, and these tests hold for everyone else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import pgq

# Each call is one mypy refuses (the ignores below): these are the untyped callers.
CALLS: dict[str, Callable[[pgq.App], Any]] = {
    "enqueue_sync": lambda app: app.enqueue_sync("t", prioirty=1),  # type: ignore[call-arg]
    "list_jobs_sync": lambda app: app.list_jobs_sync(stat="queued"),  # type: ignore[call-arg]
    "set_queue_limits_sync": lambda app: app.set_queue_limits_sync("q", max_runing=2),  # type: ignore[call-arg]
    "schedule": lambda app: app.schedule("t", crn="* * * * *"),  # type: ignore[call-arg]
    "periodic": lambda app: app.periodic(evry=60),  # type: ignore[call-arg]
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_a_misspelled_keyword_is_a_type_error_and_writes_nothing(dsn: str, call: Callable[[pgq.App], Any]) -> None:
    with pgq.App(dsn) as app:
        with pytest.raises(TypeError, match=r"prioirty|stat|max_runing|crn|evry"):
            call(app)
        assert app.list_jobs_sync() == []
        assert app.queue_limits_sync() == []
        assert app.schedules == {}

"""``app.wait(job_id)`` and ``job.wait()``: one JobWaiter (pgq/job_waiter.py) per App.

The App's waiter is created by its first wait and stopped by ``app.close()`` (or when the
App is garbage collected). ``job.wait()`` finds the App that returned the job here.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING

from pgq.errors import ConfigError
from pgq.job import Job
from pgq.job_waiter import POLL_INTERVAL, JobWaiter
from pgq.spec import check_job_id

if TYPE_CHECKING:
    from pgq.connections import Connections
    from pgq.producer import Producer

__all__ = ["POLL_INTERVAL", "JobWaiter", "bind", "forget", "owner", "wait", "wait_sync", "waiter_for"]

# -- one waiter per App -------------------------------------------------------------------

_WAITERS: weakref.WeakKeyDictionary[Connections, JobWaiter] = weakref.WeakKeyDictionary()
_WAITERS_LOCK = threading.Lock()


def waiter_for(app: Connections) -> JobWaiter:
    """The App's shared JobWaiter, created on first use (stopped by ``app.close()``)."""
    with _WAITERS_LOCK:
        waiter = _WAITERS.get(app)
        if waiter is None:
            settings = app.settings
            waiter = JobWaiter(app.listen_dsn, listen=settings.listen, allow_pooler=settings.listen_url is not None)
            _WAITERS[app] = waiter
            weakref.finalize(app, waiter.stop)  # an App dropped without close() ends its thread
        return waiter


def forget(app: Connections) -> None:
    """Stop the App's waiter, if it has one; the next wait starts a new one."""
    with _WAITERS_LOCK:
        waiter = _WAITERS.pop(app, None)
    if waiter is not None:
        waiter.stop()


# -- Job.wait(): the App that enqueued a job ---------------------------------------------


class _Owned(weakref.ref[Job]):
    """A weak reference to a job that carries (weakly) the App that returned it; the
    entry leaves ``_OWNERS`` when the job is collected. One object per job, where a
    ``weakref.finalize`` cost several: this is on every enqueue's path."""

    __slots__ = ("app", "key")
    app: weakref.ref[Producer]
    key: int


def _forget(owned: weakref.ref[Job]) -> None:
    _OWNERS.pop(owned.key, None)  # type: ignore[attr-defined]  # always an _Owned


_OWNERS: dict[int, _Owned] = {}


def bind(app: Producer, job: Job) -> Job:
    """Remember that ``app`` returned ``job``, so that ``job.wait()`` knows where to look."""
    owned = _Owned(job, _forget)
    owned.app = weakref.ref(app)
    owned.key = key = id(job)
    _OWNERS[key] = owned
    return job


def owner(job: Job) -> Producer:
    owned = _OWNERS.get(id(job))
    app = owned.app() if owned is not None else None
    if app is None:
        raise ConfigError(
            f"job {job.id} was not returned by App.enqueue (or its App is gone): use app.wait({job.id}) instead"
        )
    return app


async def wait(app: Producer, job_id: int, timeout: float | None = None) -> Job:  # noqa: ASYNC109
    check_job_id(job_id)
    return bind(app, await waiter_for(app).wait(app, job_id, timeout))


def wait_sync(app: Producer, job_id: int, timeout: float | None = None) -> Job:
    check_job_id(job_id)
    return bind(app, waiter_for(app).wait_sync(app, job_id, timeout))

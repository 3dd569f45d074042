"""A client's buffer and filter (api/subscriptions.py), without a database."""

from __future__ import annotations

import asyncio

import pytest

from pgq.api.events import parse_change
from pgq.api.subscriptions import OVERFLOW, RECONNECTED, EventFilter, JobChange, Subscription

pytestmark = pytest.mark.anyio


def _change(n: int, **fields: object) -> JobChange:
    data: dict[str, object] = {"id": n, "queue": "q", "task": "t", "state": "queued", "attempt": 0, "progress": False}
    return parse_change({**data, **fields})


async def test_a_full_buffer_is_dropped_for_one_resync_and_then_fills_again() -> None:
    subscription = Subscription(limit=3)
    for n in range(5):
        subscription.put(_change(n))
    assert subscription.dropped == 4 and subscription.peak == 3
    subscription.put(_change(5))
    items = await subscription.next(1)
    assert items[0] is OVERFLOW and [c.id for c in items[1:] if isinstance(c, JobChange)] == [4, 5]
    assert await subscription.next(0) == []


async def test_next_waits_for_a_change_and_ends_on_a_timeout_or_an_interrupt() -> None:
    subscription = Subscription()
    assert await subscription.next(0.01) == []
    waiting = asyncio.create_task(subscription.next(30))
    await asyncio.sleep(0.01)
    subscription.interrupt()
    assert await asyncio.wait_for(waiting, 1) == []
    waiting = asyncio.create_task(subscription.next(30))
    await asyncio.sleep(0.01)
    subscription.resync(RECONNECTED)
    assert await asyncio.wait_for(waiting, 1) == [RECONNECTED]


def test_filters_match_any_of_the_values_of_each_parameter() -> None:
    only = EventFilter(queues=frozenset({"a", "b"}), states=frozenset({"failed"}))
    assert only.matches(_change(1, queue="b", state="failed"))
    assert not only.matches(_change(1, queue="c", state="failed"))
    assert not only.matches(_change(1, queue="a", state="queued"))
    assert EventFilter().matches(_change(1))
    assert only.matches_bulk_insert("a") is False  # inserted jobs are queued or scheduled
    assert EventFilter(queues=frozenset({"a"})).matches_bulk_insert("a")


def test_the_wire_forms_carry_exactly_the_public_fields() -> None:
    change = _change(7, progress=True, xid=99, progress_value={"percent": 5})
    assert change.progress_known and change.progress_value == {"percent": 5}
    assert change.sse() == (
        'event: job\ndata: {"id":7,"queue":"q","task":"t","state":"queued","attempt":0,"progress":true}\n\n'
    )
    assert change.ws() == '{"type":"job","id":7,"queue":"q","task":"t","state":"queued","attempt":0,"progress":true}'
    assert not _change(8).progress_known  # a trigger leaves out a progress too large to carry

"""Retry backoff: tenacity computes the delay, Postgres remembers it.

The delay is written to the job's run_at, never slept on in memory, so a retry survives
the worker dying. Any tenacity wait strategy works (``wait_exponential_jitter``,
``wait_fixed``, ``wait_random_exponential``, combinations with ``+``).
"""

from __future__ import annotations

from typing import TypeAlias

from tenacity import RetryCallState, Retrying, wait_exponential_jitter, wait_fixed
from tenacity.wait import wait_base

Backoff: TypeAlias = wait_base | float | int
"""What ``@app.task(retry=...)`` takes: a tenacity wait strategy or fixed seconds."""

DEFAULT_BACKOFF: wait_base = wait_exponential_jitter(max=3600, exp_base=2, jitter=1)
"""1 s, 2 s, 4 s … capped at an hour, each plus up to 1 s of jitter."""


def as_wait(backoff: Backoff | None) -> wait_base:
    if backoff is None:
        return DEFAULT_BACKOFF
    if isinstance(backoff, wait_base):
        return backoff
    if isinstance(backoff, bool) or not isinstance(backoff, int | float) or backoff < 0:
        raise TypeError(f"retry= takes a tenacity wait strategy or a number of seconds >= 0, got {backoff!r}")
    return wait_fixed(backoff)


def retry_delay(wait: wait_base, attempt: int) -> float:
    """Seconds to wait before the attempt after ``attempt`` (1-based) failed."""
    state = RetryCallState(retry_object=Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    return max(0.0, float(wait(state)))

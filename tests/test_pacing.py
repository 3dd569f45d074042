"""Claim pacing: when the worker claims and how many, driven without a database or a clock."""

from __future__ import annotations

from pgq.worker.pacing import DUE_RECHECK, MIN_BACKOFF, Claim, ClaimPacing

POLL = 2.0


def _pacing(concurrency: int = 4) -> ClaimPacing:
    return ClaimPacing(concurrency, POLL, max_backlog=500)


def test_first_claim_fills_every_slot_and_checks_due_jobs() -> None:
    assert _pacing().plan(0.0, ahead_room=0, ahead_waiting=0, backlog=0) == Claim(limit=4, check_due=True)


def test_claim_counts_free_slots_plus_the_claim_ahead_room_minus_what_waits() -> None:
    pacing = _pacing()
    pacing.started()
    assert pacing.plan(0.0, ahead_room=6, ahead_waiting=2, backlog=0) == Claim(limit=7, check_due=True)


def test_no_claim_when_slots_and_buffer_are_full() -> None:
    pacing = _pacing(concurrency=2)
    pacing.started()
    pacing.started()
    assert pacing.plan(0.0, ahead_room=3, ahead_waiting=3, backlog=0) is None


def test_no_claim_while_a_full_batch_of_outcomes_waits_to_be_written() -> None:
    assert _pacing().plan(0.0, ahead_room=0, ahead_waiting=0, backlog=500) is None
    assert _pacing().plan(0.0, ahead_room=0, ahead_waiting=0, backlog=499) is not None


def test_due_check_runs_at_the_next_due_time_not_on_every_claim() -> None:
    pacing = _pacing()
    claim = pacing.plan(10.0, ahead_room=0, ahead_waiting=0, backlog=0)
    assert claim is not None and claim.check_due
    pacing.claimed(1, claim)
    assert not pacing.due_checked(10.0, promoted=False, next_due_in=0.5)
    assert pacing.succeeded(10.0) == 0.5  # sleep until the scheduled job is due
    later = pacing.plan(10.2, ahead_room=0, ahead_waiting=0, backlog=0)
    assert later is not None and not later.check_due  # a slot freed: claim, but no due check
    due = pacing.plan(10.5, ahead_room=0, ahead_waiting=0, backlog=0)
    assert due is not None and due.check_due


def test_due_time_further_than_the_poll_interval_is_checked_at_the_poll() -> None:
    pacing = _pacing()
    pacing.due_checked(0.0, promoted=False, next_due_in=3600.0)
    assert pacing.succeeded(0.0) == POLL
    pacing.due_checked(0.0, promoted=False, next_due_in=None)
    assert pacing.succeeded(1.5) == POLL - 1.5


def test_promoted_jobs_mean_claim_again_at_once() -> None:
    pacing = _pacing()
    claim = Claim(limit=4, check_due=True)
    pacing.claimed(0, claim)
    assert not pacing.more_work
    assert pacing.due_checked(0.0, promoted=True, next_due_in=None)
    assert pacing.more_work


def test_a_full_claim_wakes_the_loop_when_a_slot_frees_a_partial_one_does_not() -> None:
    pacing = _pacing()
    pacing.started()
    pacing.claimed(4, Claim(limit=4, check_due=False))
    assert pacing.finished()
    pacing.started()
    pacing.claimed(1, Claim(limit=4, check_due=False))
    assert not pacing.finished()


def test_notify_asks_for_a_claim_and_a_due_check() -> None:
    pacing = _pacing()
    pacing.claimed(0, Claim(limit=4, check_due=True))
    pacing.due_checked(0.0, promoted=False, next_due_in=None)
    pacing.wake()
    assert pacing.more_work
    claim = pacing.plan(0.1, ahead_room=0, ahead_waiting=0, backlog=0)
    assert claim is not None and claim.check_due


def test_notifies_in_a_stream_ask_for_a_due_check_at_most_every_due_recheck() -> None:
    pacing = _pacing()
    pacing.claimed(1, Claim(limit=4, check_due=True))
    pacing.due_checked(10.0, promoted=False, next_due_in=None)
    pacing.wake()
    soon = pacing.plan(10.01, ahead_room=0, ahead_waiting=0, backlog=0)
    assert soon is not None and not soon.check_due  # claim the new job at once, no due check yet
    pacing.claimed(1, soon)
    assert abs(pacing.succeeded(10.01) - (DUE_RECHECK - 0.01)) < 1e-9  # ... DUE_RECHECK after the last one
    later = pacing.plan(10.0 + DUE_RECHECK, ahead_room=0, ahead_waiting=0, backlog=0)
    assert later is not None and later.check_due


def test_a_recorded_retry_asks_for_a_due_check_and_a_wake() -> None:
    pacing = _pacing()
    pacing.claimed(0, Claim(limit=4, check_due=True))
    pacing.due_checked(0.0, promoted=False, next_due_in=None)
    assert not pacing.recorded(retry=False)
    assert pacing.recorded(retry=True)
    claim = pacing.plan(0.1, ahead_room=0, ahead_waiting=0, backlog=0)
    assert claim is not None and claim.check_due


def test_failures_back_off_from_50_ms_doubling_up_to_the_poll_interval_and_reset() -> None:
    pacing = _pacing()
    delays = [pacing.failed() for _ in range(8)]
    assert delays == [MIN_BACKOFF, 0.1, 0.2, 0.4, 0.8, 1.6, POLL, POLL]
    pacing.succeeded(0.0)
    assert pacing.failed() == MIN_BACKOFF

"""When the worker claims, and how many: pure decisions, no database, no clock of its own.

The worker loop asks ``plan()`` before each claim and reports what happened
(``claimed``, ``due_checked``, ``succeeded``/``failed``); slots report ``started`` and
``finished``, the completer ``recorded``. Each answer is a number of jobs or of seconds
to sleep, so a unit test can drive every path by passing ``now``.

- **How many:** the free slots plus the room of the claim-ahead buffer, minus what
  already waits in it; nothing while the outcome backlog is a full batch (writing it
  comes first).
- **When:** at once after a full claim, a NOTIFY or a promotion (more may be waiting);
  otherwise at the next due time of a scheduled job, at most one poll interval away;
  after a failure, with backoff from 50 ms up to the poll interval.
- **Due jobs:** promoting scheduled/retrying jobs and looking up the next due time
  run when a NOTIFY, a recorded retry or the due timer asks, not on every claim a busy
  worker makes as slots free up. A NOTIFY asks for one at most ``DUE_RECHECK`` after
  the last one: a stream of enqueues (each its own NOTIFY, most of them for ready jobs)
  then costs a due check per 50 ms instead of a round trip per job, which had made the
  worker's claims queue behind them at 200 jobs/s (benchmarks/README.md).
"""

from __future__ import annotations

import dataclasses

MIN_BACKOFF = 0.05
DUE_RECHECK = 0.05
"""Seconds: a NOTIFY's due check runs no sooner than this after the previous due check
(an idle worker's first NOTIFY checks at once). A job scheduled less than this ahead
may start up to that much late; one scheduled further ahead is not delayed."""


@dataclasses.dataclass(frozen=True, slots=True)
class Claim:
    limit: int
    """Claim at most this many jobs."""
    check_due: bool
    """… then promote due jobs and look up the next due time."""


class ClaimPacing:
    def __init__(self, concurrency: int, poll_interval: float, max_backlog: int) -> None:
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.max_backlog = max_backlog
        self.executing = 0
        """Jobs whose task is running now (the slots in use)."""
        self.more_work = True
        """The last claim was full, or a NOTIFY came: look again as soon as a slot frees."""
        self.check_due = True
        self.due_check_at = 0.0
        self.due_checked_at = float("-inf")
        self.backoff = 0.0

    # -- events -------------------------------------------------------------------

    def wake(self) -> None:
        """A NOTIFY: new jobs (claim at once), or scheduled ones whose due time may be
        sooner (check due jobs, at most DUE_RECHECK after the last check)."""
        self.more_work = True
        self.due_check_at = min(self.due_check_at, self.due_checked_at + DUE_RECHECK)

    def free_slots(self) -> int:
        return self.concurrency - self.executing

    def started(self) -> None:
        self.executing += 1

    def finished(self) -> bool:
        """A task returned and freed its slot; say whether to wake the loop for a claim."""
        self.executing -= 1
        return self.more_work

    def recorded(self, *, retry: bool) -> bool:
        """An outcome was written; say whether to wake the loop."""
        if retry:
            self.check_due = True  # the next due time may now be this retry's
            return True
        return self.more_work  # a claim held back by a full outcome backlog may go ahead

    # -- one round of the loop ----------------------------------------------------

    def plan(self, now: float, *, ahead_room: int, ahead_waiting: int, backlog: int) -> Claim | None:
        """The claim to make now, or None (sleep ``poll_interval``: a finished job or a
        written batch of outcomes wakes the loop)."""
        limit = self.free_slots() + ahead_room - ahead_waiting
        if limit <= 0 or backlog >= self.max_backlog:
            return None
        return Claim(limit, self.check_due or now >= self.due_check_at)

    def claimed(self, claimed: int, claim: Claim) -> None:
        # A full batch means more may be waiting: look again as soon as a slot frees.
        self.more_work = claimed == claim.limit

    def due_checked(self, now: float, *, promoted: bool, next_due_in: float | None) -> bool:
        """Due jobs were promoted (``promoted``: some were) and the next due time read;
        say whether to claim again at once."""
        sleep_for = self.poll_interval if next_due_in is None else max(0.0, min(self.poll_interval, next_due_in))
        self.due_check_at = now + sleep_for
        self.due_checked_at = now
        self.check_due = False
        if promoted:
            self.more_work = True
        return promoted

    def succeeded(self, now: float) -> float:
        """The round went through; seconds to sleep until the next due check."""
        self.backoff = 0.0
        return max(0.0, self.due_check_at - now)

    def failed(self) -> float:
        """The round failed; seconds to back off (doubling, 50 ms up to the poll interval)."""
        self.backoff = min(self.poll_interval, max(MIN_BACKOFF, self.backoff * 2))
        return self.backoff

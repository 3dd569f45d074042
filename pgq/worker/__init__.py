"""The pgq worker: ``pgq worker --app MODULE:ATTR`` or ``await Worker(app).run()``.

``worker.py`` wires small pieces, each in its own module and importing none of the
others' owners: ``startup`` (settings, pool), ``pacing`` (when to claim, how many: pure),
``claims`` (the claim-side statements), ``claim_ahead`` (jobs claimed beyond the free
slots), ``running`` (the jobs this worker holds), ``executor`` (runs one job),
``progress`` (rate-bounded progress writes), ``completer`` (outcomes in batches),
``heartbeat`` and ``handback`` (services with ``run_once``), ``outage`` (what failed,
and when the database may be trusted again), ``shutdown`` (stopping in order),
``listener`` (LISTEN), and the leader's ``leader``, ``rescuer``, ``pruner`` and
``scheduler``.
"""

from pgq.worker.worker import Worker

__all__ = ["Worker"]

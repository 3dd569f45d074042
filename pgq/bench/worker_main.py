"""A bench worker process: ``pgq worker`` for the bench app, plus a lag probe.

``python -m pgq.bench.worker_main --concurrency N``: builds the same ``Worker`` that
``pgq worker --app pgq.bench.tasks:app --concurrency N`` builds and runs it the same
way (on the event loop PGQ_EVENT_LOOP names), with one addition on that loop: the
``LagProbe`` of ``pgq.bench.lag``. When the worker has stopped (SIGTERM), the probe's
samples go to ``$PGQ_BENCH_LAG_DIR/<pid>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path

from pgq.bench.lag import LagProbe
from pgq.cli.loading import load_app
from pgq.worker import Worker
from pgq.worker.startup import run

APP = "pgq.bench.tasks:app"


async def _run(worker: Worker, probe: LagProbe) -> None:
    probing = asyncio.create_task(probe.run())
    try:
        await worker.run()
    finally:
        probing.cancel()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--concurrency", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    probe = LagProbe()
    app = load_app(APP)
    run(_run(Worker(app, concurrency=args.concurrency), probe), app.settings.event_loop)
    if directory := os.environ.get("PGQ_BENCH_LAG_DIR"):
        probe.write(Path(directory) / f"{os.getpid()}.json")


if __name__ == "__main__":
    main()

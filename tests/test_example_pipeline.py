"""examples/pipeline.py as a user runs it: a real `pgq worker` and `python -m
examples.pipeline`; what it prints is the README's "pipeline" output."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT
from tests.helpers import WorkerProcesses
from tests.test_readme import check_shown


def test_the_pipeline_example_prints_what_the_readme_shows(dsn: str, start_worker: WorkerProcesses) -> None:
    start_worker("--concurrency", "4", app="examples.pipeline:app")
    env = {**os.environ, "DATABASE_URL": dsn, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "examples.pipeline"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, done.stderr
    check_shown("pipeline", done.stdout)

"""Log lines as JSON (``--log-format json``, ``PGQ_LOG_FORMAT=json``), with the job they are about.

One JSON object per line: ``time``, ``level``, ``logger``, ``message`` and, where they
apply, ``job_id``, ``task``, ``queue``, ``attempt`` and ``worker_id`` (and
``exception`` with the traceback). The job comes from the record's ``extra`` (what pgq
passes with every line about a job, see ``job_fields``) or, for lines logged inside a
running task, from ``pgq.current_job()``: a task's own ``log.info(...)`` names its job
without saying so. The worker id is set once per worker (``WORKER_ID``) and inherited
by everything the worker runs. The default human format is unchanged.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
from typing import Any

from pgq.context import _current as _current_job
from pgq.job import Job
from pgq.settings import LogFormat

HUMAN_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
JOB_KEYS = ("job_id", "task", "queue", "attempt")

WORKER_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("pgq_worker_id", default=None)
"""The worker whose loop (or task thread) logs; set by ``Worker.run``."""


def job_fields(job: Job) -> dict[str, Any]:
    """``extra=`` for a log line about ``job``."""
    return {"job_id": job.id, "task": job.task, "queue": job.queue, "attempt": job.attempt}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = record.__dict__
        if "job_id" in fields:
            out.update({key: fields[key] for key in JOB_KEYS if key in fields})
        else:
            ctx = _current_job.get(None)
            if ctx is not None:
                out.update(job_fields(ctx.job))
        worker_id = fields.get("worker_id") or WORKER_ID.get()
        if worker_id is not None:
            out["worker_id"] = worker_id
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(HUMAN_FORMAT)

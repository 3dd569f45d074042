"""The pgq worker: ``pgq worker --app MODULE:ATTR`` or ``await Worker(app).run()``."""

from pgq.worker.worker import Worker

__all__ = ["Worker"]

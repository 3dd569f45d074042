"""``pgq api``: serve the API with uvicorn, refusing to expose it without tokens.

Without tokens the API is open to anyone who can connect, so it may only listen on a
loopback address. On SIGTERM/SIGINT long-polls answer at once and event streams end,
so uvicorn's graceful shutdown is not held up by clients that wait for minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from types import FrameType

import uvicorn

import pgq
from pgq.api.app import create_app
from pgq.api.config import ApiSettings, is_loopback
from pgq.api.events import JobEvents
from pgq.errors import ConfigError

log = logging.getLogger("pgq.api")


GOODBYE_SECONDS = 0.5
"""How long the first SIGTERM/SIGINT gives the stream handlers to say goodbye before
uvicorn starts its shutdown: uvicorn closes a WebSocket still open then with 1012
(service restart) instead of the API's 1001, which a busy machine made happen."""


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, events: JobEvents) -> None:
        super().__init__(config)
        self._events = events
        self._exiting = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """First signal: end long-polls and streams now, and let uvicorn shut down a
        moment later; a second signal goes to uvicorn at once (its forced exit)."""
        if self._exiting:
            super().handle_exit(sig, frame)
            return
        self._exiting = True
        self._events.shutdown_soon()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not serving yet
            super().handle_exit(sig, frame)
            return
        loop.call_soon_threadsafe(loop.call_later, GOODBYE_SECONDS, super().handle_exit, sig, frame)

    def stop(self) -> None:
        """End long-polls and streams at once, then shut down gracefully."""
        self._events.shutdown_soon()
        self.should_exit = True


class _BesideWorker(_Server):
    """Serves in the event loop of a worker (``pgq demo``): the worker's own SIGTERM and
    SIGINT handlers stop both, so uvicorn must not take the signals over."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _settings_for(host: str, settings: ApiSettings | None) -> ApiSettings:
    config = settings or ApiSettings.from_env()
    # Without tokens, loopback only; create_app logs the missing tokens (once).
    if not config.auth_enabled and not is_loopback(host):
        raise ConfigError(
            f"refusing to serve on {host} without tokens: set PGQ_API_READ_TOKENS and/or "
            "PGQ_API_WRITE_TOKENS, or serve on 127.0.0.1"
        )
    return config


def _server(cls: type[_Server], pgq_app: pgq.App, host: str, port: int, settings: ApiSettings | None) -> _Server:
    app = create_app(pgq_app, settings=_settings_for(host, settings))
    config = uvicorn.Config(app, host=host, port=port, log_config=None, timeout_graceful_shutdown=10, lifespan="on")
    return cls(config, app.state.job_events)


def serve(host: str, port: int, settings: ApiSettings | None = None) -> None:
    server = _server(_Server, pgq.App(), host, port, settings)
    log.info("pgq api on http://%s:%d (OpenAPI: /openapi.json)", host, port)
    server.run()


def server_beside_worker(pgq_app: pgq.App, host: str, port: int) -> _Server:
    """An API server to run as a task next to a worker in one event loop; ``stop()`` ends it."""
    return _server(_BesideWorker, pgq_app, host, port, None)

"""pgq's settings: one object, read from the environment once, validated at start."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, TypeVar, get_args

from pgq.errors import ConfigError
from pgq.names import check_queue_name

_T = TypeVar("_T")

PreparedStatements = Literal["auto", "on", "off"]
EventLoop = Literal["asyncio", "uvloop"]
LogFormat = Literal["human", "json"]
TraceParent = Literal["child", "link"]


def default_data_dir() -> Path:
    """Where the embedded PostgreSQL keeps its data when PGQ_DATA_DIR is not set.

    Root gets /var/lib/pgq: the server then runs as another user, which must reach the
    folder without pgq opening root's home to everyone (pgq/embedded.py).
    """
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/pgq/pgdata")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "pgq" / "pgdata"


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """Every knob pgq reads from the environment. Field docs are the reference."""

    database_url: str | None = None
    """DATABASE_URL: a libpq URL or key=value DSN. Unset: the embedded PostgreSQL."""
    app: str | None = None
    """PGQ_APP: MODULE:ATTR of your pgq.App, for every `pgq` command that takes --app."""
    data_dir: Path = dataclasses.field(default_factory=default_data_dir)
    """PGQ_DATA_DIR: the embedded PostgreSQL's data folder."""
    queues: tuple[str, ...] = ()
    """PGQ_QUEUES: comma-separated queues a worker serves. Empty: every queue its tasks name."""
    concurrency: int = 10
    """PGQ_CONCURRENCY: jobs one worker runs at once."""
    poll_interval: float = 2.0
    """PGQ_POLL_INTERVAL: seconds between polls when no NOTIFY arrives (the fallback)."""
    listen: bool = True
    """PGQ_LISTEN: false to poll only, when no direct (session) connection can LISTEN."""
    listen_url: str | None = None
    """PGQ_LISTEN_URL: a direct connection for LISTEN only, when DATABASE_URL is PgBouncer. Unset: DATABASE_URL."""
    prepared_statements: PreparedStatements = "auto"
    """PGQ_PREPARED_STATEMENTS: auto (off through a connection pooler, on otherwise), on, or off."""
    shutdown_timeout: float = 30.0
    """PGQ_SHUTDOWN_TIMEOUT: seconds running jobs get to finish after SIGTERM."""
    heartbeat_interval: float = 5.0
    """PGQ_HEARTBEAT_INTERVAL: seconds between a worker's heartbeats (its row and its running jobs)."""
    rescue_after: float = 30.0
    """PGQ_RESCUE_AFTER: a running job whose heartbeat is older than this is rescued by the leader."""
    maintenance_interval: float = 5.0
    """PGQ_MAINTENANCE_INTERVAL: how often the leader runs maintenance; its lease lasts 3 times this."""
    pool_size: int | None = None
    """PGQ_POOL_SIZE: a worker's database connections. Unset: concurrency + 2, at most 10."""
    retention_succeeded: float | None = 86_400.0
    """PGQ_RETENTION_SUCCEEDED: succeeded jobs are deleted this long after finishing (1d)."""
    retention_cancelled: float | None = 7 * 86_400.0
    """PGQ_RETENTION_CANCELLED: the same for cancelled jobs (7d)."""
    retention_failed: float | None = 14 * 86_400.0
    """PGQ_RETENTION_FAILED: the same for failed jobs (14d)."""
    result_ttl: float | None = None
    """PGQ_RESULT_TTL: results of succeeded jobs are cleared this long after finishing. Unset: kept."""
    event_loop: EventLoop = "asyncio"
    """PGQ_EVENT_LOOP: the worker's event loop, asyncio or uvloop (pip install 'pgq-queue[uvloop]')."""
    metrics_port: int | None = None
    """PGQ_METRICS_PORT: a worker serves Prometheus metrics on this port. Unset: no metrics, no cost."""
    log_format: LogFormat = "human"
    """PGQ_LOG_FORMAT: human (the default), or json: one object per line with the job and worker."""
    trace_parent: TraceParent = "child"
    """PGQ_TRACE_PARENT: a task's span is a child of the enqueuer's span (child) or a new trace linked to it (link)."""
    loop_block_warning: float = 0.2
    """PGQ_LOOP_BLOCK_WARNING: a worker warns, naming the job, when its event loop is held this many seconds."""

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.concurrency > 10_000:
            raise ConfigError(f"PGQ_CONCURRENCY must be between 1 and 10000, got {self.concurrency}")
        for name in _SECONDS:
            value = getattr(self, name)
            if not value > 0:
                raise ConfigError(f"PGQ_{name.upper()} must be a positive number of seconds, got {value}")
        if self.rescue_after < 2 * self.heartbeat_interval:
            raise ConfigError(
                f"PGQ_RESCUE_AFTER ({self.rescue_after} s) must be at least twice PGQ_HEARTBEAT_INTERVAL "
                f"({self.heartbeat_interval} s), or healthy jobs would be rescued"
            )
        for name in _DURATIONS:
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"PGQ_{name.upper()} must be a positive duration or 'forever', got {value}")
        if self.prepared_statements not in get_args(PreparedStatements):
            raise ConfigError(f"PGQ_PREPARED_STATEMENTS must be auto, on or off, got {self.prepared_statements!r}")
        if self.event_loop not in get_args(EventLoop):
            raise ConfigError(f"PGQ_EVENT_LOOP must be asyncio or uvloop, got {self.event_loop!r}")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"PGQ_METRICS_PORT must be a port number (0-65535), got {self.metrics_port}")
        if self.log_format not in get_args(LogFormat):
            raise ConfigError(f"PGQ_LOG_FORMAT must be human or json, got {self.log_format!r}")
        if self.trace_parent not in get_args(TraceParent):
            raise ConfigError(f"PGQ_TRACE_PARENT must be child or link, got {self.trace_parent!r}")
        if self.pool_size is not None and not 2 <= self.pool_size <= 1000:
            raise ConfigError(f"PGQ_POOL_SIZE must be between 2 and 1000, got {self.pool_size}")
        for queue in self.queues:
            try:
                check_queue_name(queue)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        fields: dict[str, object] = {}
        if url := env.get("DATABASE_URL", "").strip():
            fields["database_url"] = url
        if app := env.get("PGQ_APP", "").strip():
            fields["app"] = app
        if data_dir := env.get("PGQ_DATA_DIR", "").strip():
            fields["data_dir"] = Path(data_dir).expanduser()
        if queues := env.get("PGQ_QUEUES", "").strip():
            fields["queues"] = parse_queues(queues)
        if (raw := env.get("PGQ_CONCURRENCY")) is not None:
            fields["concurrency"] = _parse(raw, int, "PGQ_CONCURRENCY", "a whole number")
        if (raw := env.get("PGQ_METRICS_PORT", "").strip()) != "":
            fields["metrics_port"] = _parse(raw, int, "PGQ_METRICS_PORT", "a port number")
        for var, name in (("PGQ_LOG_FORMAT", "log_format"), ("PGQ_TRACE_PARENT", "trace_parent")):
            if raw := env.get(var, "").strip().lower():
                fields[name] = raw
        if (raw := env.get("PGQ_POOL_SIZE")) is not None:
            fields["pool_size"] = _parse(raw, int, "PGQ_POOL_SIZE", "a whole number")
        for name in _SECONDS:
            var = f"PGQ_{name.upper()}"
            if (raw := env.get(var)) is not None:
                fields[name] = _parse(raw, float, var, "a number of seconds")
        for name in _DURATIONS:
            var = f"PGQ_{name.upper()}"
            if (raw := env.get(var)) is not None:
                fields[name] = parse_duration(raw, var)
        if (raw := env.get("PGQ_LISTEN")) is not None:
            fields["listen"] = _parse_bool(raw, "PGQ_LISTEN")
        if url := env.get("PGQ_LISTEN_URL", "").strip():
            fields["listen_url"] = url
        if (raw := env.get("PGQ_PREPARED_STATEMENTS")) is not None:
            fields["prepared_statements"] = raw.strip().lower()
        if (raw := env.get("PGQ_EVENT_LOOP")) is not None:
            fields["event_loop"] = raw.strip().lower()
        return cls(**fields)  # type: ignore[arg-type]


_SECONDS = (
    "poll_interval",
    "shutdown_timeout",
    "heartbeat_interval",
    "rescue_after",
    "maintenance_interval",
    "loop_block_warning",
)


_DURATIONS = ("retention_succeeded", "retention_cancelled", "retention_failed", "result_ttl")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_duration(raw: str, var: str) -> float | None:
    """Seconds, or a number with a unit (90s, 15m, 12h, 7d); 'forever' means never."""
    text = raw.strip().lower()
    if text == "forever":
        return None
    unit = _UNITS.get(text[-1:])
    number = text[:-1] if unit else text
    try:
        value = float(number) * (unit or 1)
    except ValueError:
        raise ConfigError(f"{var} must be a duration like 3600, 90s, 15m, 12h, 7d or 'forever', got {raw!r}") from None
    if not value > 0:
        raise ConfigError(f"{var} must be a positive duration or 'forever', got {raw!r}")
    return value


def parse_queues(text: str) -> tuple[str, ...]:
    queues = tuple(q.strip() for q in text.split(",") if q.strip())
    if not queues:
        raise ConfigError(f"no queue names in {text!r}: give a comma-separated list like 'default,emails'")
    return queues


def _parse(raw: str, kind: type[_T], var: str, what: str) -> _T:
    try:
        return kind(raw.strip())  # type: ignore[call-arg]
    except ValueError:
        raise ConfigError(f"{var} must be {what}, got {raw!r}") from None


def _parse_bool(raw: str, var: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{var} must be true or false, got {raw!r}")

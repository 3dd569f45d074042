"""Configuration from the environment: defaults, parsing, and errors that say what to change."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgq import ConfigError, Settings


def test_defaults_without_environment() -> None:
    settings = Settings.from_env({})
    assert settings.database_url is None
    assert (settings.concurrency, settings.poll_interval, settings.listen) == (10, 2.0, True)
    assert settings.data_dir.name == "pgdata"


def test_values_are_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://db/app",
            "PGQ_QUEUES": "emails, reports",
            "PGQ_CONCURRENCY": "32",
            "PGQ_POLL_INTERVAL": "0.5",
            "PGQ_LISTEN": "off",
            "PGQ_SHUTDOWN_TIMEOUT": "5",
            "PGQ_DATA_DIR": "/tmp/x",
        }
    )
    assert settings.database_url == "postgresql://db/app"
    assert settings.queues == ("emails", "reports")
    assert (settings.concurrency, settings.poll_interval, settings.listen, settings.shutdown_timeout) == (
        32,
        0.5,
        False,
        5,
    )
    assert settings.data_dir == Path("/tmp/x")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PGQ_CONCURRENCY": "ten"}, "PGQ_CONCURRENCY must be a whole number, got 'ten'"),
        ({"PGQ_CONCURRENCY": "0"}, "PGQ_CONCURRENCY must be between 1 and 10000"),
        ({"PGQ_POLL_INTERVAL": "-1"}, "PGQ_POLL_INTERVAL must be a positive number of seconds"),
        ({"PGQ_LISTEN": "maybe"}, "PGQ_LISTEN must be true or false"),
        ({"PGQ_QUEUES": " , "}, "no queue names"),
        ({"PGQ_QUEUES": "ok,not ok"}, "queue name 'not ok' is invalid"),
        ({"PGQ_EVENT_LOOP": "trio"}, "PGQ_EVENT_LOOP must be asyncio or uvloop, got 'trio'"),
    ],
)
def test_invalid_values_raise_config_errors_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_the_event_loop_is_asyncio_unless_uvloop_is_asked_for() -> None:
    assert Settings.from_env({}).event_loop == "asyncio"
    assert Settings.from_env({"PGQ_EVENT_LOOP": " UVLoop "}).event_loop == "uvloop"

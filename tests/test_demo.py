"""`pgq demo` and the embedded PostgreSQL, run as a user would: the README's transcript
is what the command prints, the server it leaves running can be seen and stopped, and
run as root it opens no directory to other users."""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgq._db import SCHEMA_HEAD
from pgq.embedded import running_as_root
from pgq.settings import default_data_dir
from tests.conftest import ROOT, pgq_cli


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _readme_transcript() -> tuple[str, list[str]]:
    """The README's fenced block that starts with `$ .venv/bin/pgq demo --once`."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"```\n\$ \.venv/bin/pgq (demo --once)\n(.*?)```", readme, re.DOTALL)
    assert match, "the README lost its `pgq demo --once` transcript"
    return match.group(1), match.group(2).splitlines()


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data folder for a fresh embedded server, in a folder every user may traverse
    (as root, pgq refuses anything else), stopped and removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="pgq-demo-"))
    base.chmod(0o755)
    try:
        yield base / "pgdata"
    finally:
        pgq_cli("embedded", "stop", dsn=None, env={"PGQ_DATA_DIR": str(base / "pgdata")})
        subprocess.run(["rm", "-rf", str(base)], check=False)


def test_demo_once_prints_exactly_the_readme_transcript_and_says_how_to_stop_the_server(data_dir: Path) -> None:
    command, expected = _readme_transcript()
    port = _free_port()
    env = {"PGQ_DATA_DIR": str(data_dir)}
    result = pgq_cli(*command.split(), "--port", str(port), dsn=None, env=env, timeout=180)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # log lines go to the file the demo names, never to the terminal
    shown = (
        result.stdout.replace(str(data_dir.parent), "~/.local/share/pgq")
        .replace(f"127.0.0.1:{port}", "127.0.0.1:8000")
        .splitlines()
    )
    assert shown == expected
    assert "job 3 fetch_exchange_rate attempt 1/3 failed" in (data_dir.parent / "demo.log").read_text()

    # The server outlives the demo, as the last line says; the next command finds it.
    status = pgq_cli("embedded", "status", dsn=None, env=env)
    assert status.returncode == 0 and status.stdout.startswith(f"the embedded PostgreSQL in {data_dir} is running")
    listed = pgq_cli("jobs", "--state", "succeeded", dsn=None, env=env)
    assert len(listed.stdout.splitlines()) == 5 and listed.stderr == ""
    stopped = pgq_cli("embedded", "stop", dsn=None, env=env)
    assert stopped.stdout.strip() == f"the embedded PostgreSQL in {data_dir} is stopped"
    after = pgq_cli("embedded", "status", dsn=None, env=env)
    assert after.returncode == 3 and after.stdout.strip() == f"the embedded PostgreSQL in {data_dir} is not running"


def test_demo_says_which_database_url_it_uses_and_that_it_migrated_it(empty_dsn: str, tmp_path: Path) -> None:
    result = pgq_cli("demo", "--once", "--no-api", dsn=empty_dsn, env={"PGQ_DATA_DIR": str(tmp_path / "pgdata")})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("database: DATABASE_URL ")
    assert lines[1] == f"pgq schema: created (revision {SCHEMA_HEAD})"
    assert "embedded" not in result.stdout
    again = pgq_cli("demo", "--once", "--no-api", dsn=empty_dsn, env={"PGQ_DATA_DIR": str(tmp_path / "pgdata")})
    assert again.stdout.splitlines()[1] == f"pgq schema: revision {SCHEMA_HEAD}, up to date"
    assert [line.split()[1] for line in again.stdout.splitlines() if line.startswith("  job ")] == ["5", "6", "7", "8"]


def test_ctrl_c_in_the_demos_first_second_exits_with_a_message(dsn: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": dsn, "PGQ_DATA_DIR": str(tmp_path / "pgdata")}
    with subprocess.Popen(
        [sys.executable, "-m", "pgq", "demo", "--no-api"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    ) as demo:
        assert demo.stdout is not None
        first = demo.stdout.readline()  # the demo has started: it says which database it uses
        assert first.startswith("database: ")
        demo.send_signal(signal.SIGINT)
        out, err = demo.communicate(timeout=30)
    assert demo.returncode == 130
    assert "Traceback" not in err
    said = out + err
    assert "interrupted before the example jobs were final" in said or "pgq: interrupted (Ctrl-C)" in said


def test_one_shot_commands_log_nothing_before_a_usage_error(tmp_path: Path) -> None:
    # No DATABASE_URL: a command that needed the database would start the embedded server.
    result = pgq_cli("enqueue", "t", "--args", "[1]", dsn=None, env={"PGQ_DATA_DIR": str(tmp_path / "pgdata")})
    assert result.returncode == 2
    assert result.stderr.splitlines() == ['pgq: error: --args must be a JSON object like \'{"to": "a@b.c"}\', got list']
    assert not (tmp_path / "pgdata").exists()


@pytest.mark.skipif(not running_as_root(), reason="pgserver widens permissions only when run as root")
def test_as_root_the_embedded_server_refuses_to_open_a_700_home_and_leaves_it_700(tmp_path: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="pgq-home-"))
    try:
        base.chmod(0o755)
        home = base / "home"
        home.mkdir(mode=0o700)
        home.chmod(0o700)
        data_dir = home / ".local" / "share" / "pgq" / "pgdata"
        result = pgq_cli("jobs", dsn=None, env={"PGQ_DATA_DIR": str(data_dir)})
        assert result.returncode == 2
        assert "refusing to start the embedded PostgreSQL as root" in result.stderr
        assert f"{home} (drwx------)" in result.stderr
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        assert not (home / ".local").exists()
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)


@pytest.mark.skipif(not running_as_root(), reason="root's default differs only for root")
def test_as_root_the_default_data_folder_is_under_var_lib() -> None:
    assert default_data_dir() == Path("/var/lib/pgq/pgdata")

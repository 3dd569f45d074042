"""docker-compose.yml: valid for Compose, no clash with a local Postgres, health checked,
and the API's default tokens are the README's.

With a Docker engine and its compose plugin, `docker compose config` validates the file;
without one, the Compose specification's JSON schema (vendored by check-jsonschema) does.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

COMPOSE = ROOT / "docker-compose.yml"


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0:
        command = [docker, "compose", "-f", str(path), "config", "--quiet"]
    elif importlib.util.find_spec("check_jsonschema") is not None:
        command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)]
    else:
        pytest.skip("neither `docker compose` nor check-jsonschema (the dev extra) is installed")
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def _load() -> dict[str, Any]:
    yaml = pytest.importorskip("ruamel.yaml", reason="ruamel.yaml comes with check-jsonschema (the dev extra)")
    loaded: dict[str, Any] = yaml.YAML(typ="safe").load(COMPOSE.read_text())
    return loaded


def test_the_compose_file_is_valid_and_the_validator_catches_a_broken_one(tmp_path: Path) -> None:
    result = _validate(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("    stop_grace_period: 40s", "    stop_grace_periods: 40s"))
    assert _validate(broken).returncode != 0


def test_postgres_is_not_published_on_the_host() -> None:
    services = _load()["services"]
    assert "ports" not in services["postgres"]  # a local server may own 5432
    assert services["api"]["ports"] == ["127.0.0.1:8000:8000"]


def test_worker_and_api_have_healthchecks() -> None:
    services = _load()["services"]
    for name in ("postgres", "worker", "api"):
        assert services[name]["healthcheck"]["test"][0] in {"CMD", "CMD-SHELL"}, name
    assert "/health" in " ".join(services["api"]["healthcheck"]["test"])
    assert "pgq.workers" in " ".join(services["worker"]["healthcheck"]["test"])


def test_the_apis_default_tokens_are_the_readmes_examples() -> None:
    environment = _load()["services"]["api"]["environment"]
    readme = (ROOT / "README.md").read_text()
    for variable in ("PGQ_API_READ_TOKENS", "PGQ_API_WRITE_TOKENS"):
        default = re.fullmatch(r"\$\{" + variable + r":-(.+)\}", environment[variable])
        assert default, environment[variable]
        assert f"{variable}={default.group(1)}" in readme

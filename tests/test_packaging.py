"""The distribution's name and extras: what `pip install` gets must be this pgq, and no
extra may bring a second `pgq` console script."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from pgq.embedded import INSTALL_HINT
from tests.conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DIST = PYPROJECT["project"]["name"]


def test_the_distribution_is_not_named_like_the_unrelated_pypi_pgq() -> None:
    assert DIST == "pgq-queue"
    assert PYPROJECT["project"]["scripts"] == {"pgq": "pgq.cli:main"}


def test_no_extra_installs_pgqueuer_whose_console_script_is_also_pgq() -> None:
    for extra, requirements in PYPROJECT["project"]["optional-dependencies"].items():
        assert not any(r.lower().startswith("pgqueuer") for r in requirements), extra


def test_every_install_hint_names_the_distribution() -> None:
    assert f"pip install '{DIST}[embedded]'" == INSTALL_HINT
    sources = [*ROOT.glob("pgq/**/*.py"), *ROOT.glob("benchmarks/*.py"), ROOT / "README.md"]
    for path in sources:
        for hint in re.findall(r"pip install [^`\n]*", path.read_text()):
            assert "'pgq[" not in hint and '"pgq[' not in hint and not hint.endswith(" pgq"), (path, hint)


def test_a_users_own_api_and_migrations_packages_still_import(tmp_path: Path) -> None:
    """pgq's HTTP API and migrations install as pgq.api and pgq.migrations, never as
    top-level packages that would shadow a project's own."""
    for name in ("api", "migrations"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"OWNER = 'the user {name}'\n")
    script = (
        "import api, migrations, pgq.api, pgq.migrations\n"
        "print(api.OWNER, '|', migrations.OWNER, '|', pgq.api.create_app.__module__, '|', pgq.migrations.__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(" | ") == ["the user api", "the user migrations", "pgq.api.app", "pgq.migrations\n"]


def test_the_distribution_installs_one_top_level_package_pgq() -> None:
    """Before pgq.api/pgq.migrations, `api` and `migrations` were top-level names in site-packages."""
    top_level = importlib.metadata.distribution(DIST).read_text("top_level.txt") or ""
    assert top_level.split() == ["pgq"]

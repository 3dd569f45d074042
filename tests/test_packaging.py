"""The distribution's name and extras: what `pip install` gets must be this pgq, and no
extra may bring a second `pgq` console script."""

from __future__ import annotations

import re
import tomllib

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
    sources = [*ROOT.glob("pgq/**/*.py"), *ROOT.glob("api/**/*.py"), *ROOT.glob("benchmarks/*.py"), ROOT / "README.md"]
    for path in sources:
        for hint in re.findall(r"pip install [^`\n]*", path.read_text()):
            assert "'pgq[" not in hint and '"pgq[' not in hint and not hint.endswith(" pgq"), (path, hint)

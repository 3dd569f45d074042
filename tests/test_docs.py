"""What the docs say about pgq is true: structure, links, commands, messages, SQL, settings, routes.

The README, docs/architecture.md and benchmarks/README.md are checked against the code:
the contents list names every section, relative links, anchors and named files exist,
every ``pgq`` command line shown is one the real parser accepts, the error messages
quoted are the ones pgq says, the SQL examples run, and the lists of columns, settings,
endpoints and metrics are the real ones. The outputs the README shows are checked in
tests/test_readme.py.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import shlex
from pathlib import Path
from typing import Any

import anyio
import httpx
import psycopg
import pytest
from starlette.routing import Route

import pgq
from pgq.api import create_app
from pgq.cli import build_parser
from tests.conftest import ROOT, api_settings, pgq_cli
from tests.helpers import running_worker, wait_final
from tests.test_readme import README, example_worker_app, fenced_blocks

pytestmark = pytest.mark.anyio

DOCS = [README, ROOT / "docs" / "architecture.md", ROOT / "benchmarks" / "README.md"]


# -- the README's structure -------------------------------------------------------------


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def _headings(path: Path, level: str = "#") -> list[str]:
    lines, fenced = [], False
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (line.startswith(level + " ") if level != "#" else re.match(r"^#+ ", line)):
            lines.append(line.lstrip("#").strip())
    return lines


def test_the_contents_list_names_every_section_in_order() -> None:
    text = README.read_text(encoding="utf-8")
    contents = text.split("## Contents\n", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^- \[(.+?)\]\(#(.+?)\)", contents, re.MULTILINE)
    sections = [h for h in _headings(README, "##") if h != "Contents"]
    assert [name for name, _ in listed] == sections
    assert [anchor for _, anchor in listed] == [_slug(s) for s in sections]


def test_the_two_commands_come_first() -> None:
    """The README opens with how to run pgq and how to run its tests, before anything else."""
    lines = README.read_text(encoding="utf-8").split("\n")
    (first, _), (second, _) = fenced_blocks(lines)[:2]
    assert not any(line.startswith("#") for line in lines[1:first]), "a heading before the two commands"
    assert lines[first].endswith(".venv/bin/pgq demo")
    assert lines[second].endswith(".venv/bin/python -m pytest")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_and_anchors_resolve(doc: Path) -> None:
    text = re.sub(r"```.*?```", "", doc.read_text(encoding="utf-8"), flags=re.DOTALL)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target):
            continue  # https:, mailto:
        path_part, _, anchor = target.partition("#")
        linked = (doc.parent / path_part).resolve() if path_part else doc
        assert linked.exists(), f"{doc.name}: link to {target} names no file"
        if anchor:
            assert anchor in {_slug(h) for h in _headings(linked)}, f"{doc.name}: no heading for #{anchor}"


def _shown_command_lines() -> list[list[str]]:
    """The arguments of every `pgq ...` command in the README's bash blocks (continuations joined)."""
    text = README.read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL):
        for line in block.replace("\\\n", " ").split("\n"):
            for part in re.split(r"&&|;", line):
                words = shlex.split(part, comments=True)
                for i, word in enumerate(words):
                    if word.endswith("/pgq") or word == "pgq" or words[i - 1 : i + 1] == ["-m", "pgq"]:
                        commands.append(words[i + 1 :])
                        break
    return commands


def _without_optional_parts(words: list[str]) -> list[str]:
    """``[--queues emails,default]`` in a usage line shows an option; the line without it must parse."""
    kept, depth = [], 0
    for word in words:
        depth += word.count("[") if word.startswith("[") else 0
        if depth == 0:
            kept.append(word)
        depth -= word.count("]") if depth and word.endswith("]") else 0
    return kept


def test_every_pgq_command_line_in_the_readme_is_accepted_by_the_parser() -> None:
    commands = _shown_command_lines()
    assert len(commands) >= 8, commands
    for words in commands:
        try:
            build_parser().parse_args(_without_optional_parts(words))
        except SystemExit as exc:
            raise AssertionError(f"the README shows `pgq {shlex.join(words)}`, which pgq refuses") from exc


# -- the messages the README quotes -----------------------------------------------------


def _quoted(prefix: str) -> str:
    """The README's inline quote that starts with PREFIX, whitespace folded, to the end of its code span."""
    text = " ".join(README.read_text(encoding="utf-8").split())
    match = re.search(r"(``?)(" + re.escape(prefix) + r".*?)\1(?!`)", text)
    assert match, f"the README no longer quotes {prefix!r}"
    return match[2].strip()


def _matches(quote: str, said: str) -> bool:
    """A quote may stop before the message ends, and "..." or "…" in it stands for any text."""
    pattern = re.escape(" ".join(quote.split())).replace(r"\.\.\.", ".*").replace("…", ".*")
    return re.match(pattern, " ".join(said.split())) is not None


def test_the_error_messages_the_readme_quotes_are_what_pgq_says(dsn: str, empty_dsn: str) -> None:
    app = pgq.App(dsn)

    @app.task
    def send_email(to: str) -> None: ...

    with pytest.raises(pgq.UnknownTaskError) as unknown:
        app.enqueue_sync("sned_email", {"to": "a@b.c"})
    with pytest.raises(TypeError) as not_json:
        app.enqueue_sync("send_email", {"when": dt.datetime(2030, 1, 1)})
    with pytest.raises(pgq.ConfigError) as bad_zone:
        app.periodic(cron="30 2 * * *", timezone="Europe/Pariss", name="nightly_report")(app.tasks["send_email"])
    app.close_sync()
    library = {
        "UnknownTaskError: unknown task": f"UnknownTaskError: {unknown.value}",
        "argument 'when'": str(not_json.value),
        "schedule 'nightly_report': unknown time zone": str(bad_zone.value),
    }
    for prefix, message in library.items():
        assert _matches(_quoted(prefix), message), f"the README quotes {_quoted(prefix)!r}; pgq says {message!r}"

    cli = {  # the README's prefix: (the command, its exit status)
        "pgq: error: cannot connect": (("--database-url", "postgresql://me:secret@127.0.0.1:1/app", "jobs"), None, 1),
        "pgq: error: the database has no pgq schema": (("jobs",), empty_dsn, 1),
        "pgq: error: unknown task": (("enqueue", "make_thumbnial", "--app", "pgq.example_app:app"), dsn, 1),
        "pgq: error: PGQ_CONCURRENCY": (("jobs",), dsn, 2),
    }
    for prefix, (args, database, status) in cli.items():
        env = {"PGQ_CONCURRENCY": "0"} if "CONCURRENCY" in prefix else None
        said = pgq_cli(*args, dsn=database, env=env)
        assert said.returncode == status, said.stderr
        assert _matches(_quoted(prefix), said.stderr.strip()), f"README: {_quoted(prefix)!r}; pgq: {said.stderr!r}"


# -- what the README says about the code ----------------------------------------------


def test_every_sql_example_in_the_readme_runs(dsn: str) -> None:
    """Each ```sql block runs on a migrated database (in a transaction that is rolled back).

    The roles example is left out: roles are cluster-wide, shared with every other
    database on the server; tests/test_schema.py covers roles.sql.
    """
    blocks = re.findall(r"```sql\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) >= 4
    with psycopg.connect(dsn) as conn:
        for block in blocks:
            if "CREATE ROLE" in block:
                continue
            with conn.transaction(force_rollback=True):
                conn.execute(block.encode())


def test_the_readme_lists_the_job_table_columns_in_order(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    text = " ".join(README.read_text(encoding="utf-8").split())
    match = re.search(r"Columns: `([a-z_, ]+)`", text)
    assert match, "the README no longer lists the columns of pgq.jobs"
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = 'pgq' AND table_name = 'jobs' ORDER BY ordinal_position"
    ).fetchall()
    assert match[1].split(", ") == [r[0] for r in rows]


def _source_text() -> str:
    """pgq's code and tests, this module left out (it names variables only to check them)."""
    files = [p for d in ("pgq", "api", "tests") for p in (ROOT / d).rglob("*.py") if p != Path(__file__)]
    return "\n".join(p.read_text(encoding="utf-8") for p in files)


def test_every_setting_is_documented_and_every_variable_the_readme_names_exists() -> None:
    readme = README.read_text(encoding="utf-8")
    settings = [
        "DATABASE_URL" if f.name == "database_url" else f"PGQ_{f.name.upper()}"
        for f in dataclasses.fields(pgq.Settings)
    ]
    undocumented = [var for var in settings if f"| `{var}` |" not in readme]
    assert not undocumented, f"settings missing from the README's tables: {undocumented}"
    source = _source_text()
    read_here = {"PGQ_README_UPDATE"}  # this module's own switch
    unknown = sorted({v for v in re.findall(r"\bPGQ_[A-Z_]+\b", readme) if v not in source} - read_here)
    assert not unknown, f"the README names variables pgq does not read: {unknown}"


async def test_the_mounting_example_serves_the_api_under_its_prefix(dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's Starlette example, run as shown (tokens and database from the environment)."""
    monkeypatch.setenv("DATABASE_URL", dsn)
    for var in ("PGQ_API_READ_TOKENS", "PGQ_API_WRITE_TOKENS"):
        monkeypatch.delenv(var, raising=False)
    text = README.read_text(encoding="utf-8")
    example = re.search(r"\*\*Mounting under a prefix\*\*.*?```python\n(.*?)```", text, re.DOTALL)
    assert example, "the README no longer shows how to mount the API"
    namespace: dict[str, Any] = {}
    exec(example[1], namespace)
    transport = httpx.ASGITransport(app=namespace["app"])
    async with httpx.AsyncClient(transport=transport, base_url="http://host") as client:
        created = await client.post("/pgq/jobs", json={"task": "make_thumbnail", "args": {"width": 8, "height": 8}})
        assert created.status_code == 201, created.text
        read = await client.get(f"/pgq/jobs/{created.json()['id']}")
        assert read.status_code == 200 and read.json()["task"] == "make_thumbnail"
    jobs_api = namespace["jobs_api"]
    async with jobs_api.router.lifespan_context(jobs_api):
        pass  # what a host app does not do for a mounted app: close its pool and listener


def test_the_endpoint_table_lists_every_route_of_the_api(dsn: str) -> None:
    api_app = create_app(pgq.App(dsn), settings=api_settings())
    text = README.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(GET|POST|PUT|PATCH|DELETE) (/[^`?]*)", text, re.MULTILINE))
    served = {
        (method, re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path))  # {id:int} is {id} to a client
        for route in api_app.routes
        if isinstance(route, Route)
        for method in (route.methods or set()) - {"HEAD"}
    }
    assert documented == served


async def test_the_metrics_the_readme_names_are_served(api: httpx.AsyncClient, dsn: str) -> None:
    text = README.read_text(encoding="utf-8")
    row = next(line for line in text.split("\n") if line.startswith("| `GET /metrics`"))
    named = re.findall(r"`(pgq_[a-z_]+)\{([a-z_,]*)\}`", row)
    assert len(named) >= 4
    job = (await api.post("/jobs", json={"task": "make_thumbnail", "args": {"width": 8, "height": 8}})).json()
    worker_app = example_worker_app(dsn)
    async with worker_app, running_worker(worker_app):
        await wait_final(worker_app, [job["id"]])
    # A job left waiting: the age metric has no sample for a queue with nothing waiting.
    await api.post("/jobs", json={"task": "make_thumbnail", "queue": "waiting"})
    served = ""
    for _ in range(200):  # the API's listener counts the finished job as soon as its NOTIFY arrives
        served = (await api.get("/metrics")).text
        if "pgq_jobs_finished_total{" in served:
            break
        await anyio.sleep(0.05)
    for name, labels in named:
        sample = re.search(rf"^{name}(?:_count)?\{{([^}}]*)\}}", served, re.MULTILINE)
        assert sample, f"{name} is not served"
        assert [kv.split("=")[0] for kv in sample[1].split(",")] == labels.split(","), name


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_file_the_docs_name_exists(doc: Path) -> None:
    """`pgq/worker/rescuer.py` in a doc is a promise that the file is there."""
    named = re.findall(r"`((?:pgq|api|tests|benchmarks|migrations|docs)/[\w/.-]*)`", doc.read_text(encoding="utf-8"))
    assert named or doc.name == "README.md"
    missing = sorted({path for path in named if not (ROOT / path).exists()})
    assert not missing, f"{doc.relative_to(ROOT)} names files that do not exist: {missing}"

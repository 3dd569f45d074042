"""Workflows as values: steps composed into chains and groups, then planned as a graph.

A ``Step`` is a task bound to its arguments (``task.step(url=...)``). ``chain(a, b, c)``
runs each part after the previous one; ``group(a, b, c)`` runs its parts side by side;
a group followed by a step in a chain is a fan-in: the step waits for every member.
Nothing here touches the database: ``plan`` turns a composition (or the JSON
description ``POST /workflows`` takes) into steps in an order where parents come first,
which is what ``pgq.db.workflows.enqueue`` writes in one call.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard, Union, Unpack

from pgq import _json
from pgq.spec import EnqueueOptions, JobSpec, reject_unknown

MAX_STEPS = 100_000
"""Steps per workflow: each is a job, written in one transaction."""


def is_name(name: object) -> TypeGuard[str]:
    """A step's or a workflow's name: 1-200 characters Postgres text can hold."""
    return isinstance(name, str) and 1 <= len(name) <= 200 and "\x00" not in name and _json.utf8_encodable(name)


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    """One job of a workflow: a task name, its arguments and its enqueue options.

    ``name`` identifies the step within its workflow (the key of its result for the
    steps after it); by default the task's name, numbered ``task[i]`` when repeated.
    ``depends_on`` adds parents outside the workflow (existing job ids)."""

    task: str
    args: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    name: str | None = None
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        reject_unknown(self.options, EnqueueOptions, "step options")
        if "idempotency_key" in self.options:
            raise ValueError("a workflow step cannot have an idempotency_key")
        if self.name is not None and not is_name(self.name):
            raise ValueError(f"a step name is a string of 1-200 characters without NUL, got {self.name!r}")

    def named(self, name: str) -> Step:
        """This step under another name."""
        return dataclasses.replace(self, name=name)

    def with_options(self, **options: Unpack[EnqueueOptions]) -> Step:
        """This step with enqueue options (queue, priority, delay, run_at, max_attempts,
        depends_on, on_parent_failure)."""
        return dataclasses.replace(self, options={**self.options, **options})


@dataclasses.dataclass(frozen=True, slots=True)
class Chain:
    parts: tuple[Node, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Group:
    parts: tuple[Node, ...]


Node = Union[Step, Chain, Group]  # noqa: UP007 - a runtime alias, used in isinstance checks below


def chain(*parts: Node) -> Chain:
    """Each part runs after the previous one has succeeded (after all of it, for a group)."""
    _check_parts("chain", parts)
    return Chain(parts)


def group(*parts: Node) -> Group:
    """The parts run side by side; whatever follows waits for all of them."""
    _check_parts("group", parts)
    return Group(parts)


def _check_parts(kind: str, parts: Sequence[object]) -> None:
    if not parts:
        raise ValueError(f"a {kind} needs at least one step")
    for part in parts:
        if not isinstance(part, (Step, Chain, Group)):
            raise TypeError(f"a {kind} takes steps (task.step(...)), chains and groups, got {part!r}")


@dataclasses.dataclass(frozen=True, slots=True)
class PlannedStep:
    """A step with its place in the graph: ``parents`` are positions of earlier steps."""

    name: str
    spec: JobSpec
    parents: tuple[int, ...]


def plan(node: Node) -> list[PlannedStep]:
    """The steps of a composition in order, parents first, each with its parents."""
    flat: list[tuple[Step, tuple[int, ...]]] = []

    def place(part: Node, after: tuple[int, ...]) -> tuple[int, ...]:
        """Add ``part`` after the steps ``after``; return the steps that end it."""
        if isinstance(part, Step):
            flat.append((part, after))
            return (len(flat) - 1,)
        if isinstance(part, Chain):
            for link in part.parts:
                after = place(link, after)
            return after
        ends: list[int] = []
        for member in part.parts:
            ends.extend(place(member, after))
        return tuple(ends)

    place(node, ())
    if len(flat) > MAX_STEPS:
        raise ValueError(f"a workflow has at most {MAX_STEPS} steps, got {len(flat)}")
    names = _names([step.name or step.task for step, _ in flat], [step.name is not None for step, _ in flat])
    return [PlannedStep(name, _spec(step), parents) for name, (step, parents) in zip(names, flat, strict=True)]


def _names(wanted: list[str], given: list[bool]) -> list[str]:
    """Given names must be unique; default names (task names) get ``[i]`` when repeated."""
    counts = Counter(wanted)
    taken = {name for name, explicit in zip(wanted, given, strict=True) if explicit}
    for name, explicit in zip(wanted, given, strict=True):
        if explicit and counts[name] > 1:
            raise ValueError(f"two steps are named {name!r}: step names must be unique in a workflow")
    seen: Counter[str] = Counter()
    names = []
    for name, explicit in zip(wanted, given, strict=True):
        if explicit or counts[name] == 1:
            names.append(name)
            continue
        names.append(f"{name}[{seen[name]}]")
        seen[name] += 1
    if clash := taken.intersection(names[i] for i, explicit in enumerate(given) if not explicit):
        raise ValueError(f"step name {sorted(clash)[0]!r} is given to one step and generated for another")
    return names


def _spec(step: Step) -> JobSpec:
    return JobSpec(step.task, step.args, **step.options)


# -- the JSON description (POST /workflows, pgq enqueue-workflow) ---------------------------

_STEP_KEYS = frozenset({"name", "task", "args", "after", *EnqueueOptions.__annotations__}) - {"idempotency_key"}


def plan_description(steps: object) -> list[PlannedStep]:
    """Steps from a JSON description: a list of objects with ``name``, ``task``,
    ``args``, the enqueue options, and ``after``: names of the steps it waits for.
    ``depends_on`` names existing jobs by id. Refuses unknown keys, unknown or
    repeated names and cycles, naming them; orders the steps parents first."""
    if not isinstance(steps, list) or not steps:
        raise ValueError("steps must be a non-empty list of step objects")
    if len(steps) > MAX_STEPS:
        raise ValueError(f"a workflow has at most {MAX_STEPS} steps, got {len(steps)}")
    by_name: dict[str, dict[str, Any]] = {}
    for i, raw in enumerate(steps):
        if not isinstance(raw, dict):
            raise ValueError(f"steps[{i}] must be an object")
        if unknown := set(raw) - _STEP_KEYS:
            raise ValueError(f"steps[{i}]: unknown keys {sorted(unknown)}; allowed: {sorted(_STEP_KEYS)}")
        name = raw.get("name")
        if not is_name(name):
            raise ValueError(f"steps[{i}].name must be a string of 1-200 characters without NUL")
        if name in by_name:
            raise ValueError(f"two steps are named {name!r}: step names must be unique in a workflow")
        if not isinstance(raw.get("task"), str):
            raise ValueError(f"steps[{i}].task must be a task name")
        after = raw.get("after", [])
        if not isinstance(after, list) or not all(isinstance(a, str) for a in after):
            raise ValueError(f"steps[{i}].after must be a list of step names")
        by_name[name] = raw
    for name, raw in by_name.items():
        if unknown_parents := [a for a in raw.get("after", []) if a not in by_name]:
            raise ValueError(f"step {name!r} waits for unknown steps {unknown_parents}")
    order = _parents_first({name: list(dict.fromkeys(raw.get("after", []))) for name, raw in by_name.items()})
    position = {name: i for i, name in enumerate(order)}
    planned = []
    for name in order:
        raw = by_name[name]
        options = {k: v for k, v in raw.items() if k not in {"name", "task", "args", "after"}}
        spec = JobSpec(raw["task"], raw.get("args", {}), **options)
        parents = tuple(position[a] for a in dict.fromkeys(raw.get("after", [])))
        planned.append(PlannedStep(name, spec, parents))
    return planned


def _parents_first(after: dict[str, list[str]]) -> list[str]:
    """A topological order (Kahn's algorithm, stable in input order); ValueError naming
    a cycle when there is none."""
    waiting = {name: len(parents) for name, parents in after.items()}
    children: dict[str, list[str]] = {name: [] for name in after}
    for name, parents in after.items():
        for parent in parents:
            children[parent].append(name)
    ready = [name for name, n in waiting.items() if n == 0]
    order: list[str] = []
    while ready:
        name = ready.pop(0)
        order.append(name)
        for child in children[name]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    if len(order) < len(after):
        raise ValueError(f"the steps form a cycle: {' -> '.join(_a_cycle(after, set(order)))}")
    return order


def _a_cycle(after: dict[str, list[str]], done: set[str]) -> list[str]:
    """One cycle among the steps that could not be ordered, for the error message."""
    start = next(name for name in after if name not in done)
    path, seen = [start], {start: 0}
    while True:
        nxt = next(p for p in after[path[-1]] if p not in done)
        if nxt in seen:
            return [*path[seen[nxt] :], nxt][::-1]
        seen[nxt] = len(path)
        path.append(nxt)

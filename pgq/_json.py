"""Strict JSON for job arguments and results.

Arguments are stored as jsonb, so a value that JSON cannot carry faithfully must be
refused at enqueue, before anything is written, with the argument named: a set, a
datetime without a declared encoding, NaN/Infinity, a NUL character or a lone
surrogate (jsonb rejects both), a non-string dict key.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from collections.abc import Callable, Mapping
from enum import Enum
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import JsonbLoader, JsonLoader

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

JsonDefault = Callable[[Any], Any]
"""Turns a value JSON does not know (a datetime, a Decimal) into one it does."""

_MAX_DEPTH = 100
_MAX_INT_DIGITS = 4000
_INT_BOUND = 10**_MAX_INT_DIGITS
"""Python refuses to turn an int of more than 4300 digits into text (or back), so a
larger one could be written as jsonb but never read: refuse it at the door."""


def check_json(value: Any, path: str, default: JsonDefault | None = None, _depth: int = 0) -> Any:
    """Return ``value`` as plain JSON data, or raise naming the offending ``path``
    (a phrase such as ``argument 'to'`` or ``the result``).

    ``default`` may convert unknown types (like ``json.dumps(default=...)``); what it
    returns is checked in turn.
    """
    kind = type(value)
    if (kind is int and -_INT_BOUND < value < _INT_BOUND) or kind is bool or value is None:  # common cases first
        return value
    if kind is str and "\x00" not in value and utf8_encodable(value):
        return value
    if _depth > _MAX_DEPTH:
        raise ValueError(f"{path} is nested deeper than {_MAX_DEPTH} levels")
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -_INT_BOUND < value < _INT_BOUND:
            raise ValueError(f"{path} is an integer of more than {_MAX_INT_DIGITS} digits, which pgq cannot read back")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path} is {value!r}, which JSON cannot represent")
        return value
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{path} contains a NUL character (\\u0000), which Postgres jsonb rejects")
        if not utf8_encodable(value):
            raise ValueError(f"{path} contains a lone surrogate, which is not Unicode text and Postgres jsonb rejects")
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path} has a key {key!r} of type {type(key).__name__}; JSON keys are strings")
            if "\x00" in key or not utf8_encodable(key):
                raise ValueError(
                    f"{path} has a key containing a NUL character or a lone surrogate, which Postgres jsonb rejects"
                )
            out[key] = check_json(item, f"{path}[{key!r}]", default, _depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [check_json(item, f"{path}[{i}]", default, _depth + 1) for i, item in enumerate(value)]
    if default is not None:
        converted = default(value)
        if converted is not value:
            return check_json(converted, path, None, _depth + 1)
    raise TypeError(
        f"{path} is a {type(value).__name__} ({value!r:.60}), which is not JSON; "
        "pass JSON types, or give pgq.App(json_default=...) to encode it"
    )


def utf8_encodable(text: str) -> bool:
    """False for text with lone surrogates ("\\ud800"): it has no UTF-8 form."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_args(args: Mapping[str, Any], default: JsonDefault | None = None) -> dict[str, Any]:
    """Validate a job's keyword arguments; keys become the argument names in errors."""
    if not isinstance(args, Mapping):
        raise TypeError(f"job arguments must be a mapping of name to value, got {type(args).__name__}")
    out: dict[str, Any] = {}
    for name, value in args.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"argument names must be non-empty strings, got {name!r}")
        if "\x00" in name or not utf8_encodable(name):
            raise ValueError(
                f"argument name {name!r} contains a NUL character (\\u0000) or a lone surrogate, "
                "which Postgres jsonb rejects"
            )
        out[name] = check_json(value, f"argument {name!r}", default)
    return out


_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))
# One encoder for every call: json.dumps() with options builds a new one each time,
# which was half of the serialising cost of a bulk enqueue.


def dumps(value: Any) -> str:
    """Serialise already-checked data; allow_nan=False is a second line of defence."""
    return _ENCODER.encode(value)


def load_json_as_python(cursor: psycopg.Cursor[Any] | psycopg.AsyncCursor[Any]) -> None:
    """Read json/jsonb as Python values on this cursor of a caller's connection, whose
    own loaders may differ: Django's psycopg backend reads jsonb as text."""
    cursor.adapters.register_loader("jsonb", JsonbLoader)
    cursor.adapters.register_loader("json", JsonLoader)


def row_as_json(row: DataclassInstance, *, utc: bool = False) -> dict[str, Any]:
    """A row dataclass's fields as JSON values, named as in its table: timestamps as ISO
    8601 (converted to UTC when ``utc``), enums as their values. What the CLI and the
    HTTP API print for a job, a schedule, a queue or a worker."""
    out: dict[str, Any] = {}
    for field in dataclasses.fields(row):
        value = getattr(row, field.name)
        if isinstance(value, dt.datetime):
            value = (value.astimezone(dt.UTC) if utc else value).isoformat()
        elif isinstance(value, Enum):
            value = value.value
        out[field.name] = value
    return out

"""The binary COPY body of ``job_copy``, encoded here instead of row by row in psycopg.

``Copy.write_row`` looks up a dumper for each of a row's nine values and serialises
each ``Jsonb`` through its own call; here a batch is one bytes object: per row the id,
the args' JSON and the fields that differ from the row before, with the encodings of
the values a batch shares (queue and task, priority and max_attempts with the
reservation's time) made once. Measured in ``benchmarks/README.md`` (bulk enqueue).

The format is PostgreSQL's binary COPY: a signature and two zero words, then per row
a 16-bit field count and each field as a 32-bit length (-1 for NULL) and its bytes
(int8/int2/int4 big-endian, text as UTF-8, jsonb as version 1 and the JSON text,
timestamptz as microseconds since 2000-01-01 UTC), then -1 as the trailer.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Sequence

from pgq import _json
from pgq.spec import NewJob

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)
NULL = struct.pack(">i", -1)
FIELDS = 9
"""id, queue, task, args, priority, run_at, max_attempts, created_at, trace_context:
the columns of job_copy, in its order."""

_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_ROW_START = struct.Struct(">hiq")  # field count, then the id's length and value
_LENGTH = struct.Struct(">i")
_JSONB_VERSION = b"\x01"


def _text(value: str) -> bytes:
    data = value.encode()
    return _LENGTH.pack(len(data)) + data


def _jsonb(text: str) -> bytes:
    data = text.encode()
    return _LENGTH.pack(len(data) + 1) + _JSONB_VERSION + data


def _timestamptz(value: dt.datetime) -> bytes:
    delta = value - _EPOCH
    return struct.pack(">iq", 8, (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)


def _numbers(priority: int, max_attempts: int, at: bytes) -> bytes:
    """priority, run_at, max_attempts and created_at: the fields after args."""
    return struct.pack(">ih", 2, priority) + at + struct.pack(">ii", 4, max_attempts) + at


def encode(ids: Sequence[int], jobs: Sequence[NewJob], now: dt.datetime) -> bytes:
    """The whole COPY body for these jobs (ready now, no key) with their reserved ids;
    run_at and created_at are ``now``."""
    at = _timestamptz(now)
    names: dict[tuple[str, str], bytes] = {}
    numbers: dict[tuple[int, int], bytes] = {}
    dumps, pack_start, pack_length = _json.dumps, _ROW_START.pack, _LENGTH.pack
    parts = [SIGNATURE]
    append = parts.append
    for job_id, new in zip(ids, jobs, strict=True):
        append(pack_start(FIELDS, 8, job_id))
        key = (new.queue, new.task)
        if (encoded := names.get(key)) is None:
            encoded = names[key] = _text(new.queue) + _text(new.task)
        append(encoded)
        args = dumps(new.args).encode()
        append(pack_length(len(args) + 1))
        append(_JSONB_VERSION)
        append(args)
        number = (new.priority, new.max_attempts)
        if (encoded := numbers.get(number)) is None:
            encoded = numbers[number] = _numbers(new.priority, new.max_attempts, at)
        append(encoded)
        append(NULL if new.trace_context is None else _jsonb(dumps(new.trace_context)))
    append(TRAILER)
    return b"".join(parts)

"""Reading requests: the JSON body (type, size, syntax, fields) and query parameters.

Each failure has its own status so a client knows what to fix: 415 not JSON, 413 too
large, 400 not parseable, 422 well-formed but wrong fields.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

import pgq
from pgq.api.errors import ApiError

M = TypeVar("M", bound=BaseModel)

MAX_JOB_ID = 2**63 - 1
_FIELD_WORDS = (
    "task", "queue", "priority", "delay", "run_at", "max_attempts", "idempotency_key", "depends_on", "on_parent_failure"
)  # fmt: skip


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


def invalid(exc: ValidationError, where: str) -> ApiError:
    """422 naming every wrong field and what is wrong with it."""
    fields = [
        {"field": ".".join(str(part) for part in err["loc"]) or where, "message": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]
    summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return ApiError(422, f"invalid {where}: {summary}", details={"fields": fields})


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``max_bytes`` (whatever Content-Length says)."""
    too_large = ApiError(413, f"request body is larger than {max_bytes} bytes", details={"max_bytes": max_bytes})
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise too_large
    return bytes(body)


async def read_json(request: Request, model: type[M], max_bytes: int) -> M:
    if not _is_json(request.headers.get("content-type", "")):
        raise ApiError(415, "the request body must be JSON: send 'Content-Type: application/json'")
    body = await read_body(request, max_bytes)
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        broken = [e for e in exc.errors(include_url=False) if e["type"] == "json_invalid"]
        if broken:
            raise ApiError(400, f"the request body is not valid JSON: {broken[0]['msg']}") from None
        raise invalid(exc, "body") from None


def library_refused(exc: ValueError | TypeError) -> ApiError:
    """422 for a job the library refused (its message names the field: "argument 'x' ...",
    "run_at must ..."), in the same shape as a validation error."""
    message = str(exc)
    first = message.split(" ", 1)[0]
    field = "args" if first in {"argument", "arguments", "job"} else first if first in _FIELD_WORDS else "body"
    fields = [{"field": field, "message": message, "type": "value_error"}]
    return ApiError(422, f"invalid body: {field}: {message}", details={"fields": fields})


def unknown_parents(exc: pgq.UnknownParentError) -> ApiError:
    """422 naming the parent ids that are no job (nothing was written): ``details.missing``."""
    fields = [{"field": "depends_on", "message": str(exc), "type": "unknown_parents"}]
    return ApiError(
        422,
        f"invalid body: depends_on: {exc}",
        code="unknown_parents",
        details={"fields": fields, "missing": exc.missing},
    )


def read_query(request: Request, model: type[M]) -> M:
    """Query parameters through ``model``; unknown parameters are rejected."""
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise invalid(exc, "query") from None


def job_id(request: Request, what: str = "job") -> int:
    """The {id} path parameter. Anything that is not an id a bigint can hold names no
    job (or workflow): 404, decided before int() (which refuses numbers of more than 4300 digits)."""
    raw: str = request.path_params["id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(MAX_JOB_ID)) or int(raw) > MAX_JOB_ID:
        raise ApiError(404, f"no {what} with id {raw[:40]!r}" + ("..." if len(raw) > 40 else ""))
    return int(raw)

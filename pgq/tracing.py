"""Traces from enqueue to execution, with OpenTelemetry when the app uses it (extra ``[otel]``).

Enqueue stores the caller's trace context (W3C ``traceparent`` / ``tracestate``, through
OpenTelemetry's configured propagator) in the job's ``trace_context`` column; the worker
runs the task inside a span that is a child of it, or the root of a new trace linked to
it (``PGQ_TRACE_PARENT=link``), with the job id, task, queue and attempt as attributes
and a failed attempt recorded as an exception event and an error status. The HTTP API's
``POST /jobs`` continues the caller's ``traceparent`` header (``continuing``).

pgq never imports OpenTelemetry itself: it is used only when the process already did
(an app that configures tracing imports it). Without it, enqueue pays one dict lookup
and one context-variable read per job, and the worker one dict lookup per job.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import sys
from collections.abc import Iterator, Mapping
from typing import Any

_OTEL = "opentelemetry.trace"
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")
_TRACESTATE = re.compile(r"[\x20-\x7e]{1,512}")

_incoming: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("pgq_incoming_trace", default=None)


def active() -> bool:
    """Whether this process uses OpenTelemetry (imported it): only then are spans made."""
    return _OTEL in sys.modules


def carrier() -> dict[str, str] | None:
    """The trace context to store with a job enqueued now: the current span's (when
    OpenTelemetry is in use and a span is recording), else the incoming request's
    (``continuing``), else None."""
    if _OTEL in sys.modules:
        own = _otel_carrier()
        if own:
            return own
    return _incoming.get()


def _otel_carrier() -> dict[str, str] | None:
    from opentelemetry import propagate, trace

    if not trace.get_current_span().get_span_context().is_valid:
        return None
    out: dict[str, str] = {}
    propagate.inject(out)
    return out or None


def incoming(traceparent: str | None, tracestate: str | None = None) -> dict[str, str] | None:
    """A caller's W3C trace context, if its ``traceparent`` is valid (version ff is not);
    a ``tracestate`` that is too long or not printable is dropped."""
    if traceparent is None:
        return None
    traceparent = traceparent.strip().lower()
    if not _TRACEPARENT.fullmatch(traceparent) or traceparent.startswith("ff"):
        return None
    out = {"traceparent": traceparent}
    if tracestate is not None and _TRACESTATE.fullmatch(tracestate.strip()):
        out["tracestate"] = tracestate.strip()
    return out


@contextlib.contextmanager
def continuing(traceparent: str | None, tracestate: str | None = None) -> Iterator[None]:
    """Jobs enqueued inside continue this caller's trace (when no span of our own is current)."""
    token = _incoming.set(incoming(traceparent, tracestate))
    try:
        yield
    finally:
        _incoming.reset(token)


def job_span(job: Any, parent: str = "child") -> contextlib.AbstractContextManager[Any]:
    """The current span for one attempt of ``job`` (a ``pgq.Job``); call only when ``active()``."""
    from opentelemetry import context, propagate, trace

    stored = _carrier_of(job.trace_context)
    attributes = {
        "messaging.system": "pgq",
        "messaging.operation.type": "process",
        "messaging.destination.name": job.queue,
        "messaging.message.id": str(job.id),
        "pgq.job.id": job.id,
        "pgq.job.task": job.task,
        "pgq.job.queue": job.queue,
        "pgq.job.attempt": job.attempt,
    }
    tracer = trace.get_tracer("pgq")
    name = f"pgq.run {job.task}"
    kind = trace.SpanKind.CONSUMER
    origin = propagate.extract(stored) if stored else None
    if parent == "link" and origin is not None:
        linked = trace.get_current_span(origin).get_span_context()
        links = [trace.Link(linked)] if linked.is_valid else []
        return tracer.start_as_current_span(
            name, context=context.Context(), kind=kind, links=links, attributes=attributes
        )
    return tracer.start_as_current_span(name, context=origin or context.Context(), kind=kind, attributes=attributes)


def _carrier_of(value: object) -> dict[str, str] | None:
    """The stored context, if it is what enqueue writes (a row edited by hand may hold
    anything: then the span starts a trace of its own rather than failing the job)."""
    if not isinstance(value, dict) or not value:
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return None
    return value


def record(span: Any, ending: str, error: Mapping[str, Any] | None) -> None:
    """How the attempt ended, on its span: an error as an exception event and ERROR status."""
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("pgq.job.outcome", ending)
    if error is None or ending == "cancelled":
        return
    span.add_event(
        "exception",
        {
            "exception.type": str(error.get("type", "")),
            "exception.message": str(error.get("message", "")),
            "exception.stacktrace": str(error.get("traceback", "")),
        },
    )
    span.set_status(Status(StatusCode.ERROR, f"{error.get('type')}: {error.get('message')}"))

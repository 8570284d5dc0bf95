"""OpenTelemetry spans and metrics, and the attributes every log record carries.

OpenTelemetry is optional (``pip install "cldprov-async[otel]"``, the API only). Without it
every hook here is one ``None`` check; with the API but no SDK configured, a check of the
API's providers (``active()``) and nothing more.

One span of kind CLIENT per call of an operation (``operation()``), named as called
(``access_keys.generate``), covering every attempt and wait; requests the library makes on
the caller's behalf inside it (generate's look-up by name) join that span rather than open
their own. Rotation opens a span of its own (``span()``) whose calls are its children.
Metrics: ``cldprov.client.requests`` counts attempts by outcome; the histogram
``cldprov.client.rate_limit.wait`` records each call's seconds at the rate-limit gate.

Nothing here sees a credential: attributes are ids, names, counts and statuses, and an
error is recorded by its class and its message (library messages carry no secrets).

Imports: nothing of the package; every layer above may call it.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any

from ._version import __version__

try:
    from opentelemetry import context as _context
    from opentelemetry import metrics as _metrics
    from opentelemetry import trace as _trace
    from opentelemetry.metrics import _internal as _metrics_state
except ImportError:  # the [otel] extra is not installed
    _trace = None  # type: ignore[assignment]

#: Outcomes of one attempt for the ``cldprov.client.requests`` counter.
OK, REJECTED, RETRIED, FAILED = "ok", "rejected", "retried", "failed"

_WAIT_BUCKETS = (0.0, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0)


def log_extra(
    operation: str | None = None,
    method: str | None = None,
    path: str | None = None,
    *,
    status: int | None = None,
    attempt: int | None = None,
    wait_s: float | None = None,
    sub_account_id: str | None = None,
) -> dict[str, object]:
    """A log record's ``extra=``: the facts that apply, as ``cldprov_*`` attributes."""
    facts = {
        "cldprov_operation": operation,
        "cldprov_method": method,
        "cldprov_path": path,
        "cldprov_status": status,
        "cldprov_attempt": attempt,
        "cldprov_wait_s": wait_s,
        "cldprov_sub_account_id": sub_account_id,
    }
    return {k: v for k, v in facts.items() if v is not None}


class _Instruments:
    """The tracer and instruments, taken once from the global providers (proxies until set)."""

    def __init__(self) -> None:
        assert _trace is not None
        self.tracer = _trace.get_tracer("cldprov_async", __version__)
        meter = _metrics.get_meter("cldprov_async", __version__)
        self.requests = meter.create_counter(
            "cldprov.client.requests",
            unit="{request}",
            description="HTTP requests sent, one per attempt, by operation and outcome",
        )
        name, unit = "cldprov.client.rate_limit.wait", "s"
        about = "Seconds one call waited at the rate-limit gate (0 included)"
        try:
            self.wait = meter.create_histogram(
                name, unit, about, explicit_bucket_boundaries_advisory=_WAIT_BUCKETS
            )
        except TypeError:  # an opentelemetry-api older than the [otel] extra's 1.30
            self.wait = meter.create_histogram(name, unit, about)


_otel: _Instruments | None = _Instruments() if _trace is not None else None


class _Scope:
    """One operation call's span and its running totals over every request it makes."""

    __slots__ = (
        "attempts",
        "context_token",
        "operation",
        "scope_token",
        "span",
        "status",
        "waited",
    )

    def __init__(self, operation: str, span: Any) -> None:
        self.operation = operation
        self.span = span
        self.attempts = 0
        self.waited = 0.0
        self.status: int | None = None
        self.context_token: Any = None
        self.scope_token: Token[_Scope | None] | None = None

    def __enter__(self) -> _Scope:
        # Without an SDK the span is the API's invalid one: nothing could nest under it.
        if self.span.get_span_context().is_valid:
            self.context_token = _context.attach(_trace.set_span_in_context(self.span))
        self.scope_token = _scope.set(self)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.scope_token is not None:
            _scope.reset(self.scope_token)
        if self.context_token is not None:
            _context.detach(self.context_token)
        span = self.span
        if span.is_recording():
            span.set_attribute("cldprov.attempts", self.attempts)
            span.set_attribute("cldprov.rate_limit.wait_seconds", self.waited)
            if self.status is not None:
                span.set_attribute("http.response.status_code", self.status)
            if isinstance(exc, Exception):
                _fail(span, exc)
        span.end()
        if _otel is not None:
            _otel.wait.record(self.waited, {"operation": self.operation})

    def finish(self, exc: BaseException | None) -> None:
        self.__exit__(None if exc is None else type(exc), exc, None)


_scope: ContextVar[_Scope | None] = ContextVar("cldprov_span", default=None)


def _fail(span: Any, exc: BaseException) -> None:
    assert _trace is not None
    span.record_exception(exc)
    span.set_status(_trace.Status(_trace.StatusCode.ERROR, type(exc).__name__))
    span.set_attribute("error.type", type(exc).__name__)


def active() -> bool:
    """Whether anything is recorded: the API is installed and the application set an SDK.

    One call with two attribute reads, so the request path pays only this when OpenTelemetry
    is absent or unconfigured. Until a provider is set every span and instrument is a no-op;
    the API keeps its providers in module globals, read here. Should a later API rename
    them, this answers True: correct, only slower.
    """
    return _trace is not None and (
        getattr(_trace, "_TRACER_PROVIDER", True) is not None
        or getattr(_metrics_state, "_METER_PROVIDER", True) is not None
    )


class _Joined:
    """A call inside another operation's span (generate's look-up): it records into that one."""

    __slots__ = ()

    def finish(self, exc: BaseException | None) -> None:
        pass


_JOINED = _Joined()


def start(name: str, sub_account_id: str | None = None) -> _Scope | _Joined | None:
    """Open the span of one operation call, or join the caller's; None when nothing records.

    The caller ends it with ``finish(exc)``: a ``with`` block would cost every call a
    context manager even when OpenTelemetry is absent.
    """
    if _trace is None or (  # active(), inlined: this runs on every call
        getattr(_trace, "_TRACER_PROVIDER", True) is None
        and getattr(_metrics_state, "_METER_PROVIDER", True) is None
    ):
        return None
    if _scope.get() is not None:
        return _JOINED
    assert _otel is not None and _trace is not None
    attributes = {} if sub_account_id is None else {"cldprov.sub_account_id": sub_account_id}
    span = _otel.tracer.start_span(name, kind=_trace.SpanKind.CLIENT, attributes=attributes)
    return _Scope(name, span).__enter__()


def finish(scope: _Scope | _Joined | None, exc: BaseException | None) -> None:
    """End what ``start`` opened (nothing when it returned None)."""
    if scope is not None:
        scope.finish(exc)


def request_done(attempts: int, waited: float, status: int | None) -> None:
    """One request of the current operation finished (its attempts, gate wait, last status)."""
    if _otel is None:
        return
    scope = _scope.get()
    if scope is not None:
        scope.attempts += attempts
        scope.waited += waited
        if status is not None:
            scope.status = status


def attempt(operation: str, outcome: str) -> None:
    """Count one attempt of ``operation``: ``OK``, ``REJECTED``, ``RETRIED`` or ``FAILED``."""
    if _otel is not None and active():
        _otel.requests.add(1, {"operation": operation, "outcome": outcome})


@contextlib.contextmanager
def span(name: str, sub_account_id: str) -> Any:
    """A span around work made of several calls (a rotation); they become its children.

    None when no tracer provider is set: the API's no-op span (a context manager, a context
    attached and detached) cost every environment of a bulk rotation for nothing."""
    if _trace is None or getattr(_trace, "_TRACER_PROVIDER", True) is None:
        yield None
        return
    assert _otel is not None
    attributes = {"cldprov.sub_account_id": sub_account_id}
    with _otel.tracer.start_as_current_span(
        name, attributes=attributes, record_exception=False, set_status_on_exception=False
    ) as current:
        try:
            yield current
        except Exception as exc:
            _fail(current, exc)
            raise


def failed(current: Any, exc: BaseException | None) -> None:
    """Mark the span from ``span()`` failed by ``exc`` (work that returns its errors)."""
    if current is not None and exc is not None and current.is_recording():
        _fail(current, exc)

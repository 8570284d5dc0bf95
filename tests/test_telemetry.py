"""OpenTelemetry: spans and metrics in the SDK's in-memory exporter and reader.

The SDK's providers are global and can be set once per process, so one pair serves the
module; each test starts by draining both (the reader is set to delta temporality, so one
collection holds what happened since the last).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import RecordingServer
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from samples import ACCESS_KEYS

from cldprov_async import CldProvisioning, NotFoundError, RetryConfig, Security
from cldprov_async.testing import FakeProvisioningServer, RateLimitPolicy

SECRET = "PROVISIONING-SECRET-tel-77"
SUBS = ["env-a", "env-b"]
FAST = RetryConfig(backoff_initial=0.01, backoff_max=0.02)

_EXPORTER = InMemorySpanExporter()
_READER = InMemoryMetricReader(
    preferred_temporality={
        Counter: AggregationTemporality.DELTA,
        Histogram: AggregationTemporality.DELTA,
    }
)


@pytest.fixture(scope="module", autouse=True)
def providers() -> Iterator[None]:
    """Set when this module runs, not when it is collected; the exporter stops keeping spans
    after it, so later tests (a memory soak) do not fill it."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[_READER]))
    yield
    _EXPORTER.shutdown()


@pytest.fixture(autouse=True)
def fresh(providers: None) -> Iterator[None]:
    _EXPORTER.clear()
    _READER.get_metrics_data()  # drains (collect() alone would leave its data behind)
    yield
    _EXPORTER.clear()


def fake(**kwargs: Any) -> FakeProvisioningServer:
    return FakeProvisioningServer(
        sub_accounts=SUBS, keys_per_sub_account=1, api_secret=SECRET, **kwargs
    )


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def spans() -> list[ReadableSpan]:
    return list(_EXPORTER.get_finished_spans())


def points() -> dict[str, list[tuple[dict[str, Any], Any]]]:
    """Metric name -> [(attributes, data point)] collected since the last call."""
    out: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    data = _READER.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            if scope.scope.name != "cldprov_async":
                continue
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    out.setdefault(metric.name, []).append((dict(point.attributes or {}), point))
    return out


def counts(found: dict[str, list[tuple[dict[str, Any], Any]]]) -> dict[tuple[str, str], int]:
    return {
        (attrs["operation"], attrs["outcome"]): point.value
        for attrs, point in found.get("cldprov.client.requests", [])
        if point.value
    }


async def test_one_client_span_per_operation_named_as_called() -> None:
    async with fake() as server, server.client() as client:
        keys = client.access_keys
        await keys.list({"sub_account_id": "env-a"})
        made = await keys.generate("env-a", {"name": "deploy"})
        await keys.update("env-a", made.api_key, {"enabled": False})
        await keys.delete("env-a", made.api_key)
        await keys.generate("env-b", {"name": "gone"})
        await keys.delete_by_name("env-b", "gone")
        assert len(server.journal) == 6
    got = spans()
    assert [s.name for s in got] == [
        "access_keys.list",
        "access_keys.generate",
        "access_keys.update",
        "access_keys.delete",
        "access_keys.generate",
        "access_keys.delete_by_name",
    ]
    for span, sub in zip(got, ["env-a"] * 4 + ["env-b"] * 2, strict=True):
        assert span.kind is SpanKind.CLIENT
        assert span.parent is None
        assert span.status.status_code is StatusCode.UNSET
        assert dict(span.attributes or {}) == {
            "cldprov.sub_account_id": sub,
            "cldprov.attempts": 1,
            "cldprov.rate_limit.wait_seconds": pytest.approx(0.0, abs=0.05),
            "http.response.status_code": 200,
        }
    found = points()
    assert counts(found) == {
        ("access_keys.list", "ok"): 1,
        ("access_keys.generate", "ok"): 2,
        ("access_keys.update", "ok"): 1,
        ("access_keys.delete", "ok"): 1,
        ("access_keys.delete_by_name", "ok"): 1,
    }
    waits = {a["operation"]: p.count for a, p in found["cldprov.client.rate_limit.wait"]}
    assert waits == {
        "access_keys.list": 1,
        "access_keys.generate": 2,
        "access_keys.update": 1,
        "access_keys.delete": 1,
        "access_keys.delete_by_name": 1,
    }


async def test_a_retried_call_is_one_span_covering_every_attempt() -> None:
    async with fake() as server, server.client(retry_config=FAST) as client:
        server.inject("503", route="list", count=2)
        await client.access_keys.list({"sub_account_id": "env-a"})
        assert [e.status for e in server.journal] == [503, 503, 200]
    (span,) = spans()
    assert span.name == "access_keys.list"
    assert span.attributes is not None
    assert span.attributes["cldprov.attempts"] == 3
    assert span.attributes["http.response.status_code"] == 200
    assert counts(points()) == {
        ("access_keys.list", "retried"): 2,
        ("access_keys.list", "ok"): 1,
    }


async def test_an_error_sets_the_status_and_records_the_exception_without_secrets() -> None:
    async with fake() as server, server.client(retry_config=FAST) as client:
        with pytest.raises(NotFoundError):
            await client.access_keys.update("env-a", "no-such-key", {"enabled": False})
        server.inject("503", route="list", count=5)
        with pytest.raises(Exception, match="503"):
            await client.access_keys.list({"sub_account_id": "env-b"}, retries=FAST)
    update, listing = spans()
    for span, status in ((update, 404), (listing, 503)):
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes is not None
        assert span.attributes["http.response.status_code"] == status
        (event,) = span.events
        assert event.name == "exception"
        assert event.attributes is not None
        assert str(status) in str(event.attributes["exception.message"])
    assert listing.attributes is not None
    assert listing.attributes["cldprov.attempts"] == FAST.max_attempts
    assert counts(points())[("access_keys.list", "failed")] == 1
    dumped = "".join(s.to_json() for s in (update, listing))
    assert SECRET not in dumped
    assert "Authorization" not in dumped and "Basic " not in dumped


async def test_a_span_without_any_answer_has_no_status_code() -> None:
    async with fake() as server, server.client(retry_config=FAST) as client:
        server.inject("drop_before", route="list", count=10)
        with pytest.raises(Exception, match="connection"):
            await client.access_keys.list({"sub_account_id": "env-a"})
    (span,) = spans()
    assert span.attributes is not None
    assert "http.response.status_code" not in span.attributes
    assert span.status.status_code is StatusCode.ERROR


async def test_generate_resolving_by_name_stays_in_the_callers_span() -> None:
    async with fake() as server, server.client(retry_config=FAST) as client:
        server.inject("drop_after", route="generate")  # created, but the answer is lost
        key = await client.access_keys.generate("env-a", {"name": "deploy"})
        assert key.api_secret is not None
        assert server.keys_created == 1
        routes = [e.route for e in server.journal]
    assert "list" in routes  # it did look the key up by name
    (span,) = spans()
    assert span.name == "access_keys.generate"
    assert span.attributes is not None
    assert span.attributes["cldprov.attempts"] == len(routes)
    assert span.status.status_code is StatusCode.UNSET
    found = counts(points())
    assert {op for op, _ in found} == {"access_keys.generate"}
    assert sum(found.values()) == len(routes)


async def test_rejections_are_counted_and_waits_recorded_per_call(
    recording_server: RecordingServer,
) -> None:
    reset = {"X-FeatureRateLimit-Limit": "10", "X-FeatureRateLimit-Remaining": "0"}
    recording_server.enqueue(
        429, json={"error": {"message": "slow down"}}, headers={**reset, "Retry-After": "1"}
    )
    recording_server.respond(json=ACCESS_KEYS)
    async with CldProvisioning(
        "acc", Security("k", SECRET), server_url=recording_server.url
    ) as client:
        await client.access_keys.list({"sub_account_id": "env-a"})
    assert len(recording_server.requests) == 2
    (span,) = spans()
    assert attrs(span)["cldprov.attempts"] == 2
    assert attrs(span)["cldprov.rate_limit.wait_seconds"] >= 0.9
    found = points()
    assert counts(found) == {("access_keys.list", "rejected"): 1, ("access_keys.list", "ok"): 1}
    ((labels, hist),) = found["cldprov.client.rate_limit.wait"]
    assert labels == {"operation": "access_keys.list"}
    assert hist.count == 1
    assert hist.sum == pytest.approx(attrs(span)["cldprov.rate_limit.wait_seconds"])


async def test_calls_queued_at_the_gate_each_record_their_own_wait() -> None:
    async with fake(rate_limit=RateLimitPolicy(limit=2, window=1.0)) as server:
        # The server's windows follow the wall clock: start just after one opens, so the
        # calls past the budget surely wait most of a second.
        await asyncio.sleep(1.02 - time.time() % 1.0)
        async with server.client() as client:
            await asyncio.gather(
                *(client.access_keys.list({"sub_account_id": "env-a"}) for _ in range(4))
            )
        assert {e.status for e in server.journal} == {200}
    got = spans()
    assert len(got) == 4
    waits = sorted(attrs(s)["cldprov.rate_limit.wait_seconds"] for s in got)
    assert waits[0] < 0.2  # the first went at once
    assert waits[-1] > 0.5  # the last waited for the next window
    ((_, hist),) = points()["cldprov.client.rate_limit.wait"]
    assert hist.count == 4
    assert hist.sum == pytest.approx(sum(waits))


async def test_rotation_is_a_span_whose_calls_are_its_children() -> None:
    async with fake() as server, server.client() as client:
        result = await client.access_keys.rotate("env-a", name="r1", retire="delete")
        assert result.ok
        calls = len(server.journal)
    got = spans()
    (rotation,) = [s for s in got if s.name == "access_keys.rotate"]
    children = [s for s in got if s is not rotation]
    assert [s.name for s in children] == [
        "access_keys.list",
        "access_keys.generate",
        "access_keys.delete",
    ]
    assert len(children) == calls
    assert rotation.context is not None and rotation.attributes is not None
    assert rotation.attributes["cldprov.sub_account_id"] == "env-a"
    for child in children:
        assert child.parent is not None
        assert child.parent.span_id == rotation.context.span_id


async def test_the_product_environment_listing_is_a_span_of_its_own() -> None:
    async with fake() as server, server.client() as client:
        listing = await client.product_environments.list(enabled=True)
        assert {env.id for env in listing.sub_accounts} == {"env-a", "env-b"}
    (span,) = spans()
    assert span.name == "product_environments.list"
    assert span.kind is SpanKind.CLIENT
    assert dict(span.attributes or {}) == {
        "cldprov.attempts": 1,
        "cldprov.rate_limit.wait_seconds": pytest.approx(0.0, abs=0.05),
        "http.response.status_code": 200,
    }
    assert counts(points()) == {("product_environments.list", "ok"): 1}


async def test_each_environment_of_a_bulk_rotation_is_a_rotation_span() -> None:
    async with fake() as server, server.client() as client:
        results = [r async for r in client.access_keys.rotate_iter(["env-a", "env-b"])]
        assert all(r.ok for r in results)
    got = spans()
    rotations = {
        s.attributes["cldprov.sub_account_id"]: s
        for s in got
        if s.name == "access_keys.rotate" and s.attributes
    }
    assert set(rotations) == {"env-a", "env-b"}
    children = [s for s in got if s.name != "access_keys.rotate"]
    assert len(children) == len(server.journal)
    for child in children:
        assert child.parent is not None and child.attributes is not None
        parent = rotations[str(child.attributes["cldprov.sub_account_id"])]
        assert parent.context is not None
        assert child.parent.span_id == parent.context.span_id


async def test_a_failed_rotation_marks_its_span() -> None:
    async with fake() as server, server.client() as client:
        result = await client.access_keys.rotate("no-such-env")
        assert not result.ok
        assert len(server.journal) == 1
    (listing, rotation) = spans()
    assert rotation.name == "access_keys.rotate"
    assert rotation.status.status_code is StatusCode.ERROR
    assert [e.name for e in rotation.events] == ["exception"]
    assert listing.parent is not None and rotation.context is not None
    assert listing.parent.span_id == rotation.context.span_id


async def test_aiohttps_own_instrumentation_nests_under_our_span() -> None:
    instrumentation = pytest.importorskip("opentelemetry.instrumentation.aiohttp_client")
    instrumentor = instrumentation.AioHttpClientInstrumentor()
    instrumentor.instrument()
    try:
        async with fake() as server, server.client(retry_config=FAST) as client:
            server.inject("503", route="list")
            await client.access_keys.list({"sub_account_id": "env-a"})
            assert len(server.journal) == 2
    finally:
        instrumentor.uninstrument()
    got = spans()
    (ours,) = [s for s in got if s.name == "access_keys.list"]
    theirs = [s for s in got if s is not ours]
    # aiohttp's trace hooks wrap the whole middleware chain: one span for our two attempts.
    assert len(theirs) == 1
    assert ours.context is not None and theirs[0].parent is not None
    assert theirs[0].parent.span_id == ours.context.span_id
    assert theirs[0].kind is SpanKind.CLIENT


_WITHOUT = """
import asyncio, json, sys
{block}
from cldprov_async import _telemetry
from cldprov_async.testing import FakeProvisioningServer

async def main():
    async with FakeProvisioningServer() as fake, fake.client() as client:
        listing = await client.access_keys.list({{"sub_account_id": "sub-1"}})
    print(json.dumps([_telemetry._otel is None, len(listing.access_keys)]))

asyncio.run(main())
"""


@pytest.mark.parametrize(
    ("block", "absent"),
    [
        ("sys.modules['opentelemetry'] = None  # as if the [otel] extra were not installed", True),
        ("import opentelemetry.trace  # the API, with no SDK configured", False),
    ],
    ids=["no opentelemetry", "api without sdk"],
)
def test_calls_work_without_opentelemetry_or_without_an_sdk(block: str, absent: bool) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT.format(block=block)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [absent, 1]
    assert done.stderr == ""


_CONFIGURED = """
import json
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from cldprov_async import _telemetry


seen = [_telemetry.active(), _telemetry.start("x") is None]
{setup}
seen += [_telemetry.active(), _telemetry.start("x") is None]
print(json.dumps(seen))
"""


@pytest.mark.parametrize(
    "setup",
    ["trace.set_tracer_provider(TracerProvider())", "metrics.set_meter_provider(MeterProvider())"],
    ids=["tracer provider", "meter provider"],
)
def test_spans_start_once_the_application_sets_either_provider(setup: str) -> None:
    # The cheap check reads the API's module globals: this fails if a new API renames them
    # (the check would then answer True for ever: correct, but no longer cheap).
    done = subprocess.run(
        [sys.executable, "-c", _CONFIGURED.format(setup=setup)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [False, True, True, False]


async def test_bad_arguments_open_no_span() -> None:
    async with fake() as server, server.client() as client:
        with pytest.raises(ValueError, match="sub_account_id"):
            await client.access_keys.generate("", {"name": "k"})
        with pytest.raises(ValueError, match="key"):
            await client.access_keys.update("env-a", "", {"enabled": True})
        assert server.journal == []
    assert spans() == []
    assert counts(points()) == {}

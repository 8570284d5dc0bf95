"""pytest plugin (entry point ``cldprov_async``): two fixtures for users' tests.

``cldprov_fake_server`` yields a started ``cldprov_async.testing.FakeProvisioningServer``
running in its own thread and event loop, so sync tests and async tests on any loop can use it.
Configure it with ``@pytest.mark.cldprov_fake(**kwargs)`` (keyword arguments of
``FakeProvisioningServer``); markers closer to the test win, per keyword.

``cldprov_aioresponses`` yields an active ``aioresponses`` mock that works on aiohttp 3.14 (the
compatibility patch in ``cldprov_async.testing._aioresponses`` is applied for the test only).

Imports ``cldprov_async.testing`` and aioresponses only inside the fixtures, so loading the
plugin stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from aioresponses import aioresponses

    from cldprov_async.testing import FakeProvisioningServer

MARKER = "cldprov_fake"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**kwargs): FakeProvisioningServer keyword arguments for the "
        "cldprov_fake_server fixture",
    )


@pytest.fixture
def cldprov_fake_server(request: pytest.FixtureRequest) -> Iterator[FakeProvisioningServer]:
    """A started fake Provisioning API, stopped after the test."""
    # Imported here so that merely having the plugin installed does not import aiohttp.
    from cldprov_async.testing import FakeProvisioningServer

    kwargs: dict[str, Any] = {}
    for marker in request.node.iter_markers(MARKER):  # closest first
        if marker.args:
            raise pytest.UsageError(f"@pytest.mark.{MARKER} takes keyword arguments only")
        for name, value in marker.kwargs.items():
            kwargs.setdefault(name, value)
    with FakeProvisioningServer(**kwargs).run_in_thread() as server:
        yield server


@pytest.fixture
def cldprov_aioresponses() -> Iterator[aioresponses]:
    """An active ``aioresponses()``: the transport is mocked, so no middleware (retries,
    rate-limit gate) runs; use ``cldprov_fake_server`` to exercise those."""
    try:
        from cldprov_async.testing._aioresponses import mocked
    except ImportError as exc:  # aioresponses is in the [test] extra
        raise pytest.UsageError(
            f"cldprov_aioresponses needs aioresponses ({exc}): pip install 'cldprov-async[test]'"
        ) from exc
    with mocked() as mock:
        yield mock

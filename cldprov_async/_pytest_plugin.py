"""pytest plugin (entry point ``cldprov_async``): the ``cldprov_fake_server`` fixture.

The fixture yields a started :class:`~cldprov_async.testing.FakeProvisioningServer` running in its
own thread and event loop, so sync tests and async tests on any loop can use it. Configure it with
``@pytest.mark.cldprov_fake(**kwargs)`` (keyword arguments of ``FakeProvisioningServer``); markers
closer to the test win, per keyword.

Imports ``cldprov_async.testing`` only inside the fixture, so loading the plugin stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
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

"""aioresponses on aiohttp 3.14: the patch behind the ``cldprov_aioresponses`` fixture.

aioresponses 0.7.9 builds ``ClientResponse`` without the keyword-only ``stream_writer`` that
aiohttp 3.14 requires (``TypeError: ... missing 1 required keyword-only argument:
'stream_writer'``; upstream issue pnuckowski/aioresponses#289). aiohttp only reads
``stream_writer.output_size`` from it, so the patch hands aioresponses a ``ClientResponse``
subclass that supplies an object with just that. It is applied only while the mock is
active, restored afterwards, and skipped once aioresponses passes ``stream_writer`` itself.

Imports: aiohttp and aioresponses only (the fixture imports this module lazily).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import ClientResponse
from aioresponses import aioresponses
from aioresponses import core as _core_module

#: aioresponses' module, patched by attribute (it does not export the name it imports).
core: Any = _core_module


class _OutputSizeOnly:
    output_size = 0


class _ClientResponse(ClientResponse):
    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _OutputSizeOnly())
        super().__init__(method, url, **kwargs)


def needs_patch() -> bool:
    """True while aiohttp wants ``stream_writer`` and aioresponses does not pass it."""
    wanted = inspect.signature(ClientResponse.__init__).parameters.get("stream_writer")
    if wanted is None or wanted.default is not inspect.Parameter.empty:
        return False
    try:
        source = inspect.getsource(core.RequestMatch._build_response)
    except (OSError, TypeError, AttributeError):
        return True
    return "stream_writer" not in source


@contextmanager
def patched() -> Iterator[None]:
    """The patch, for as long as the block runs (a no-op when it is not needed)."""
    if not needs_patch():
        yield
        return
    original = core.ClientResponse
    core.ClientResponse = _ClientResponse
    try:
        yield
    finally:
        core.ClientResponse = original


@contextmanager
def mocked(**kwargs: Any) -> Iterator[aioresponses]:
    """An active ``aioresponses(**kwargs)`` that works on this aiohttp."""
    with patched(), aioresponses(**kwargs) as mock:
        yield mock

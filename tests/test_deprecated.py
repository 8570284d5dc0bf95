"""No API deprecated in a promised Python (3.11 to 3.14) is used, where mypy cannot tell.

``mypy`` flags what typeshed marks deprecated (error code ``deprecated``, checked by
``.ci/run`` against each version's stubs: ``iscoroutinefunction``, the child watchers,
``set_event_loop_policy``, ``utcnow``...). Some deprecations depend on how a function is
called, so the stubs leave them unmarked; this test reads the sources (package, tests,
benchmarks) for those:

- ``asyncio.get_event_loop()``: deprecated without a running loop since 3.12, an error in
  3.14 (``get_running_loop()`` inside coroutines; ``asyncio.run``/``new_event_loop`` outside);
- the event-loop policy classes (deprecated in 3.14, with the policy functions);
- ``typing.ByteString`` (3.12), ``locale.getdefaultlocale`` (3.11);
- ``re.sub``/``subn``/``split`` with ``count``, ``maxsplit`` or ``flags`` passed by position
  (3.13);
- ``TarFile.extractall``/``extract`` without ``filter=`` (3.12; the default changes in 3.14).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(
    p for top in ("cldprov_async", "tests", "benchmarks") for p in (ROOT / top).rglob("*.py")
)
NAMES = {
    "get_event_loop",
    "DefaultEventLoopPolicy",
    "AbstractEventLoopPolicy",
    "BaseDefaultEventLoopPolicy",
    "ByteString",
    "getdefaultlocale",
}
#: ``re`` function -> how many arguments it takes by position without a deprecation warning.
RE_POSITIONAL = {"sub": 3, "subn": 3, "split": 2}


def deprecated_uses(source: str) -> list[str]:
    """``line: what`` for each deprecated use found in ``source``."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        name = None
        if isinstance(node, ast.Attribute):
            name = node.attr
        elif isinstance(node, ast.Name | ast.alias):
            name = node.id if isinstance(node, ast.Name) else node.name
        if name in NAMES:
            found.append(f"{getattr(node, 'lineno', '?')}: {name}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr, owner = node.func.attr, node.func.value
            limit = RE_POSITIONAL.get(attr)
            is_re = isinstance(owner, ast.Name) and owner.id == "re"
            if is_re and limit is not None and len(node.args) > limit:
                found.append(f"{node.lineno}: re.{attr} with flags or a count by position")
            filtered = any(k.arg == "filter" for k in node.keywords)
            if attr in ("extractall", "extract") and not filtered and not is_re:
                found.append(f"{node.lineno}: {attr} without filter=")
    return found


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import asyncio\nasyncio.get_event_loop()\n", ["2: get_event_loop"]),
        ("from asyncio import get_event_loop\n", ["1: get_event_loop"]),
        ("import asyncio\nasyncio.DefaultEventLoopPolicy()\n", ["2: DefaultEventLoopPolicy"]),
        ("from typing import ByteString\n", ["1: ByteString"]),
        ("import re\nre.sub('a', 'b', 'c', 1)\n", ["2: re.sub with flags or a count by position"]),
        ("import re\nre.split('a', 'b', 1)\n", ["2: re.split with flags or a count by position"]),
        ("t.extractall('d')\n", ["1: extractall without filter="]),
        ("import re\nre.sub('a', 'b', 'c', count=1)\n", []),
        ("t.extractall('d', filter='data')\n", []),
        ("import asyncio\nasyncio.get_running_loop()\n", []),
    ],
)
def test_the_scan_sees_each_kind(source: str, expected: list[str]) -> None:
    assert deprecated_uses(source) == expected


def test_no_source_uses_an_api_deprecated_in_a_promised_python() -> None:
    assert len(SOURCES) > 50  # the scan reads the project, not an empty glob
    found = {
        str(path.relative_to(ROOT)): uses
        for path in SOURCES
        if path.name != Path(__file__).name and (uses := deprecated_uses(path.read_text()))
    }
    assert found == {}

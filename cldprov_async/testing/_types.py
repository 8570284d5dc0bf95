"""The names the fake server speaks in: its routes and its fault kinds.

The bottom of the package: imports nothing from it (nor from ``cldprov_async``).
"""

from __future__ import annotations

from typing import Final, Literal, get_args

FaultKind = Literal[
    "500", "502", "503", "504", "drop_before", "drop_after", "html", "truncated", "delay"
]
"""How an injected fault fails a request (see the package docstring for each kind)."""
Route = Literal[
    "list", "generate", "update", "delete", "delete_by_name", "list_product_environments", "ping"
]
"""The server's routes: the five access-key operations and the product-environment listing."""

FAULT_KINDS: Final[tuple[FaultKind, ...]] = get_args(FaultKind)
"""Every fault kind: what ``Faults`` draws from by default."""
ROUTES: Final[tuple[Route, ...]] = get_args(Route)
"""Every route, for ``Faults.routes`` and ``inject(route=...)``."""

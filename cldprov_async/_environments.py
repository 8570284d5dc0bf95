"""The product environment behind each id a rotation is given, listed ahead of need.

A lifecycle rotation needs each environment's cloud name (the ping, the deploy hook), which
only the product-environment listing has. Given ``ProductEnvironment`` objects (the CLI's
``--all`` listing), nothing is sent; given ids in a list, they are listed 100 at a time as
the rotation reaches them (one request per 100 environments); given an async stream of ids,
one at a time. Each environment is forgotten once handed out, so memory stays flat.

Imports: the product-environment listing, models, errors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ._config import RetryConfig
from ._product_environments import MAX_LISTED, ProductEnvironmentOperations
from .errors import NotFoundError
from .models import ProductEnvironment


class EnvironmentLookup:
    """``await lookup.get(item)``: the ``ProductEnvironment`` of an id (or the item itself)."""

    def __init__(
        self,
        listing: ProductEnvironmentOperations,
        order: Sequence[str] | None,
        retries: RetryConfig | None,
    ) -> None:
        self._listing = listing
        self._order = order
        self._position = {sub: n for n, sub in enumerate(order or ())}
        self._retries = retries
        self._known: dict[str, ProductEnvironment] = {}
        self._asked: set[str] = set()
        self._lock = asyncio.Lock()

    async def get(self, item: str | ProductEnvironment) -> ProductEnvironment:
        """The environment of ``item``.

        Raises:
            NotFoundError: the account's listing does not hold this id.
            CldProvisioningError: the listing failed.
        """
        if isinstance(item, ProductEnvironment):
            return item
        async with self._lock:
            if item not in self._asked:
                await self._list_from(item)
            found = self._known.pop(item, None)
            self._asked.discard(item)
        if found is None:
            raise NotFoundError(
                f"product environment {item} is not in the account's listing", status_code=404
            )
        return found

    async def _list_from(self, sub: str) -> None:
        start = self._position.get(sub)
        if self._order is None or start is None:
            chunk = [sub]
        else:
            ahead = self._order[start : start + 4 * MAX_LISTED]
            chunk = [s for s in ahead if s not in self._asked][:MAX_LISTED]
        listing = await self._listing.list(ids=chunk, retries=self._retries)
        self._asked.update(chunk)
        wanted = set(chunk)
        self._known.update((env.id, env) for env in listing.sub_accounts if env.id in wanted)

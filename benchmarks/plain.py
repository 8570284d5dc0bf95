"""A second floor, written apart from ``worker.raw``: plain aiohttp as its users write it.

``worker.raw`` is the tightest loop we could write (URLs and headers built once, bytes in
and out); this one is what an application calling the API with nothing but aiohttp would
look like: a session with the ``Authorization`` header as a default, f-string URLs,
``params=`` and ``json=``, ``raise_for_status()`` and ``await resp.json()``. No models. It
shares nothing with our client or with ``worker.raw`` beyond the call counts and the server.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any


@asynccontextmanager
async def plain(
    url: str,
    account_id: str,
    api_key: str,
    api_secret: str,
    sub: str,
    keys: tuple[str, ...],
    op: str,
) -> AsyncIterator[Callable[[int], Awaitable[Any]]]:
    import aiohttp

    token = base64.b64encode(f"{api_key}:{api_secret}".encode()).decode()
    account = f"{url}/v1_1/provisioning/accounts/{account_id}"
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {token}"}) as http:

        async def fetch(method: str, where: str, **kwargs: Any) -> Any:
            async with http.request(method, where, **kwargs) as resp:
                resp.raise_for_status()
                return await resp.json()

        def access_keys() -> str:
            return f"{account}/sub_accounts/{sub}/access_keys"

        async def list_(i: int) -> Any:
            return await fetch("GET", access_keys(), params={"sort_by": "created_at"})

        async def generate(i: int) -> Any:
            return await fetch("POST", access_keys(), json={"name": f"bench-{i}", "enabled": True})

        async def update(i: int) -> Any:
            body = {"name": f"upd-{i}", "enabled": i % 2 == 0}
            return await fetch("PUT", f"{access_keys()}/{keys[i % len(keys)]}", json=body)

        async def delete(i: int) -> Any:
            return await fetch("DELETE", f"{access_keys()}/{keys[i % len(keys)]}")

        async def delete_by_name(i: int) -> Any:
            return await fetch("DELETE", access_keys(), params={"name": f"bench-{i}"})

        async def environments(i: int) -> Any:
            return await fetch("GET", f"{account}/sub_accounts", params={"enabled": "true"})

        yield {
            "list": list_,
            "generate": generate,
            "update": update,
            "delete": delete,
            "delete_by_name": delete_by_name,
            "environments": environments,
        }[op]

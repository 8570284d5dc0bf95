"""The clients every benchmark drives, each behind one shape: ``async with client(target, op)
as call: await call(i)`` (``classic`` is synchronous), with the same requests for all.

Imports: nothing of the benchmarks (the runners and the worker import it).
"""

from __future__ import annotations

import base64
import contextlib
import json
import sys
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

CLIENTS = ("cldprov_async", "raw", "official", "classic")
OPS = ("generate", "list", "update")
#: Every operation a client can be driven through (``benchmarks.instructions`` counts them all).
ALL_OPS = (*OPS, "delete", "delete_by_name", "environments")

#: What each client needs imported before anything is timed.
MODULES: dict[str, tuple[str, ...]] = {
    "cldprov_async": ("cldprov_async",),
    "raw": ("aiohttp",),
    "official": ("cloudinary_account_provisioning", "httpx"),
    "classic": ("cloudinary", "cloudinary.provisioning"),
}

AsyncCall = Callable[[int], Awaitable[object]]
SyncCall = Callable[[int], object]


@dataclass(frozen=True)
class Target:
    url: str
    account_id: str
    api_key: str
    api_secret: str
    sub_account: str
    #: api_keys of the sub-account's existing keys (filled for ``update`` only).
    keys: tuple[str, ...] = ()

    @property
    def keys_url(self) -> str:
        return (
            f"{self.url}/v1_1/provisioning/accounts/{self.account_id}"
            f"/sub_accounts/{self.sub_account}/access_keys"
        )


# The same request bodies for every client.
def generate_body(i: int) -> dict[str, Any]:
    return {"name": f"bench-{i}", "enabled": True}


def update_body(i: int) -> dict[str, Any]:
    return {"name": f"upd-{i}", "enabled": i % 2 == 0}


#: ``list``'s request besides the id, as users pass it: enum members' string values.
LIST_QUERY = {"sort_by": "created_at"}


def fetch_keys(target: Target) -> tuple[str, ...]:
    """The sub-account's api_keys, with the standard library (outside the timed part)."""
    token = base64.b64encode(f"{target.api_key}:{target.api_secret}".encode()).decode()
    request = urllib.request.Request(
        target.keys_url, headers={"Authorization": f"Basic {token}", "Accept": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        data = json.loads(response.read())
    return tuple(str(key["api_key"]) for key in data["access_keys"])


# --- the clients --------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def ours(target: Target, op: str) -> AsyncIterator[AsyncCall]:
    """cldprov_async, as its README has users call it."""
    from cldprov_async import CldProvisioning, Security

    security = Security(
        provisioning_api_key=target.api_key, provisioning_api_secret=target.api_secret
    )
    async with CldProvisioning(target.account_id, security, server_url=target.url) as client:
        api, sub, keys = client.access_keys, target.sub_account, target.keys

        async def generate(i: int) -> object:
            return await api.generate(sub, generate_body(i))

        async def list_(i: int) -> object:
            return await api.list({"sub_account_id": sub, **LIST_QUERY})

        async def update(i: int) -> object:
            return await api.update(sub, keys[i % len(keys)], update_body(i))

        async def delete(i: int) -> object:
            return await api.delete(sub, keys[i % len(keys)])

        async def delete_by_name(i: int) -> object:
            return await api.delete_by_name(sub, f"bench-{i}")

        async def environments(i: int) -> object:
            return await client.product_environments.list(enabled=True)

        yield {
            "generate": generate,
            "list": list_,
            "update": update,
            "delete": delete,
            "delete_by_name": delete_by_name,
            "environments": environments,
        }[op]


@contextlib.asynccontextmanager
async def raw(target: Target, op: str) -> AsyncIterator[AsyncCall]:
    """The client-side floor: the same requests and headers, ``json.loads`` of the body, no models.

    One ``ClientSession`` with the same connection limit as cldprov_async's default (100).
    """
    import aiohttp
    from yarl import URL

    headers = {
        "Authorization": aiohttp.encode_basic_auth(target.api_key, target.api_secret),
        "Accept": "application/json",
        "User-Agent": f"bench-raw/0 aiohttp/{aiohttp.__version__} python/{sys.version.split()[0]}",
    }
    json_headers = {**headers, "Content-Type": "application/json"}
    collection = URL(target.keys_url)
    listed = collection.with_query(LIST_QUERY)
    key_urls = [URL(f"{target.keys_url}/{key}") for key in target.keys]
    envs = URL(target.keys_url.rpartition("/sub_accounts/")[0] + "/sub_accounts?enabled=true")
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send(method: str, url: URL, body: bytes | None) -> object:
            async with session.request(
                method,
                url,
                data=body,
                headers=headers if body is None else json_headers,
                allow_redirects=False,
            ) as resp:
                data = json.loads(await resp.read())
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}")
                return data

        async def generate(i: int) -> object:
            return await send("POST", collection, json.dumps(generate_body(i)).encode())

        async def list_(i: int) -> object:
            return await send("GET", listed, None)

        async def update(i: int) -> object:
            body = json.dumps(update_body(i)).encode()
            return await send("PUT", key_urls[i % len(key_urls)], body)

        async def delete(i: int) -> object:
            return await send("DELETE", key_urls[i % len(key_urls)], None)

        async def delete_by_name(i: int) -> object:
            return await send("DELETE", collection.with_query(name=f"bench-{i}"), None)

        async def environments(i: int) -> object:
            return await send("GET", envs, None)

        yield {
            "generate": generate,
            "list": list_,
            "update": update,
            "delete": delete,
            "delete_by_name": delete_by_name,
            "environments": environments,
        }[op]


def official_sdk(target: Target, *, retry: bool = False, http: Any = None) -> Any:
    """``AsyncCldProvisioning`` of cloudinary-account-provisioning, pointed at the fake."""
    import cloudinary_account_provisioning as cap
    from cloudinary_account_provisioning.utils import BackoffStrategy, RetryConfig

    kwargs: dict[str, Any] = {}
    if retry:
        # Its retries cover 429 and 5XX (honouring Retry-After), never 420.
        kwargs["retry_config"] = RetryConfig(
            "backoff", BackoffStrategy(500, 5000, 1.5, 60000), retry_connection_errors=False
        )
    if http is not None:
        kwargs["async_client"] = http
    security = cap.Security(
        provisioning_api_key=target.api_key, provisioning_api_secret=target.api_secret
    )
    return cap.AsyncCldProvisioning(
        account_id=target.account_id, security=security, server_url=target.url, **kwargs
    )


@contextlib.asynccontextmanager
async def official(target: Target, op: str) -> AsyncIterator[AsyncCall]:
    """cloudinary-account-provisioning 0.1.3, its async class with its defaults."""
    async with official_sdk(target) as sdk:
        api, sub, keys = sdk.access_keys, target.sub_account, target.keys

        async def generate(i: int) -> object:
            return await api.generate(sub_account_id=sub, access_key_request=generate_body(i))

        async def list_(i: int) -> object:
            return await api.list(request={"sub_account_id": sub, **LIST_QUERY})

        async def update(i: int) -> object:
            return await api.update(
                sub_account_id=sub,
                key=keys[i % len(keys)],
                access_key_update_request=update_body(i),
            )

        yield {"generate": generate, "list": list_, "update": update}[op]


def classic(target: Target, op: str) -> SyncCall:
    """The classic ``cloudinary`` SDK's provisioning functions (synchronous, urllib3).

    The base URL comes from the ``upload_prefix`` option; credentials go with each call.
    """
    import logging

    from cloudinary.provisioning import account

    # urllib3 keeps one pooled connection per host and logs a warning for each connection it
    # discards past that; unconfigured logging would print them all to stderr.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    options = {
        "upload_prefix": target.url,
        "account_id": target.account_id,
        "provisioning_api_key": target.api_key,
        "provisioning_api_secret": target.api_secret,
    }
    sub, keys = target.sub_account, target.keys

    def generate(i: int) -> object:
        return account.generate_access_key(sub, **generate_body(i), **options)

    def list_(i: int) -> object:
        return account.access_keys(sub, **LIST_QUERY, **options)

    def update(i: int) -> object:
        return account.update_access_key(sub, keys[i % len(keys)], **update_body(i), **options)

    call: SyncCall = {"generate": generate, "list": list_, "update": update}[op]
    return call


ASYNC_CLIENTS = {"cldprov_async": ours, "raw": raw, "official": official}


def env_id(i: int) -> str:
    """The product environment ids of the rotation scenario (the runner makes the same)."""
    return f"env-{i:03d}"

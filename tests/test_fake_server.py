"""Tests of cldprov_async.testing: a raw aiohttp client against the fake server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from cldprov_async.testing import (
    DEFAULT_PAGE_SIZE,
    FakeProvisioningServer,
    Faults,
    JournalEntry,
    RateLimitPolicy,
    main,
)

pytest_plugins = ["pytester"]

AUTH = aiohttp.encode_basic_auth("fake-key", "fake-secret")
T0 = 1_699_999_200.0  # 2023-11-14T22:00:00Z, a whole hour
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
SECRET = re.compile(r"^[A-Za-z0-9_-]{27}$")
ROOT = Path(__file__).resolve().parent.parent


class FakeClock:
    """A wall clock that moves only when told to."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def url(
    server: FakeProvisioningServer,
    sub: str = "sub-1",
    key: str | None = None,
    account: str = "fake-account",
) -> str:
    path = f"/v1_1/provisioning/accounts/{account}/sub_accounts/{sub}/access_keys"
    return server.url + path + (f"/{key}" if key is not None else "")


async def call(
    http: aiohttp.ClientSession, method: str, target: str, **kwargs: Any
) -> tuple[int, CIMultiDictProxy[str], Any]:
    """Return (status, headers, parsed JSON body or raw text)."""
    async with http.request(method, target, **kwargs) as response:
        text = await response.text()
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = text
        return response.status, response.headers, body


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": AUTH}) as session:
        yield session


@pytest.fixture
async def server() -> AsyncIterator[FakeProvisioningServer]:
    async with FakeProvisioningServer(seed=1) as fake:
        yield fake


def names(server: FakeProvisioningServer, sub: str = "sub-1") -> list[str]:
    return [key.name for key in server.keys(sub)]


# --- state, defaults, arranging ---------------------------------------------------------------


async def test_defaults_and_initial_keys() -> None:
    fake = FakeProvisioningServer(keys_per_sub_account=3, sub_accounts=["a", "b"])
    assert (fake.account_id, fake.api_key, fake.api_secret) == (
        "fake-account",
        "fake-key",
        "fake-secret",
    )
    assert names(fake, "a") == names(fake, "b") == ["key-1", "key-2", "key-3"]
    keys = fake.keys("a") + fake.keys("b")
    assert len({key.api_key for key in keys}) == 6
    for key in keys:
        assert re.fullmatch(r"[1-9]\d{14}", key.api_key)
        assert SECRET.match(key.api_secret)
        assert ISO.match(key.created_at) and key.created_at == key.updated_at
        assert key.enabled and key.dedicated_for == ()
    assert fake.keys_created == 0
    with pytest.raises(RuntimeError):
        _ = fake.url
    with pytest.raises(KeyError):
        fake.keys("nope")


async def test_add_key_and_sub_account() -> None:
    fake = FakeProvisioningServer(sub_accounts=[])
    fake.add_sub_account("s")
    assert names(fake, "s") == ["key-1"]
    with pytest.raises(ValueError, match="already exists"):
        fake.add_sub_account("s")
    fake.add_key("s", name="key-2")
    auto = fake.add_key("s")  # skips the taken key-2
    assert auto.name == "key-3"
    dedicated = fake.add_key("s", name="hooks", enabled=False, dedicated=True)
    assert dedicated.dedicated_for == ("webhooks",) and not dedicated.enabled
    with pytest.raises(ValueError, match="already exists"):
        fake.add_key("s", name="hooks")
    assert names(fake, "s") == ["key-1", "key-2", "key-3", "hooks"]
    assert fake.keys_created == 0  # arranged keys are not counted


async def test_seed_makes_keys_reproducible() -> None:
    first = FakeProvisioningServer(seed=5, keys_per_sub_account=3).keys("sub-1")
    second = FakeProvisioningServer(seed=5, keys_per_sub_account=3).keys("sub-1")
    other = FakeProvisioningServer(seed=6, keys_per_sub_account=3).keys("sub-1")
    assert [(k.api_key, k.api_secret) for k in first] == [(k.api_key, k.api_secret) for k in second]
    assert [k.api_key for k in first] != [k.api_key for k in other]


# --- routes -------------------------------------------------------------------------------------


async def test_list(server: FakeProvisioningServer, http: aiohttp.ClientSession) -> None:
    status, headers, body = await call(http, "GET", url(server))
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert "X-FeatureRateLimit-Limit" not in headers  # no policy, no headers
    (key,) = server.keys("sub-1")
    assert body == {
        "access_keys": [
            {
                "name": key.name,
                "api_key": key.api_key,
                "api_secret": key.api_secret,
                "created_at": key.created_at,
                "updated_at": key.updated_at,
                "enabled": True,
            }
        ],
        "total": 1,
    }


async def test_generate(server: FakeProvisioningServer, http: aiohttp.ClientSession) -> None:
    status, headers, body = await call(
        http, "POST", url(server), json={"name": "main", "enabled": False, "extra": 1}
    )
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert body["name"] == "main" and body["enabled"] is False and "dedicated_for" not in body
    assert re.fullmatch(r"\d{15}", body["api_key"]) and SECRET.match(body["api_secret"])
    assert ISO.match(body["created_at"]) and body["created_at"] == body["updated_at"]
    held = server.keys("sub-1")[-1]
    assert (held.name, held.api_key, held.api_secret, held.enabled) == (
        "main",
        body["api_key"],
        body["api_secret"],
        False,
    )
    # enabled defaults to true; booleans may come as strings; no name means ""
    assert (await call(http, "POST", url(server), json={"name": "b"}))[2]["enabled"] is True
    assert (await call(http, "POST", url(server), json={"enabled": "false"}))[2]["enabled"] is False
    assert (await call(http, "POST", url(server), json={}))[2]["name"] == ""
    assert names(server) == ["key-1", "main", "b", "", ""]
    assert server.keys_created == 4


async def test_generated_keys_are_unique(
    server: FakeProvisioningServer, http: aiohttp.ClientSession
) -> None:
    bodies = await asyncio.gather(
        *(call(http, "POST", url(server), json={"name": f"k{i}"}) for i in range(100))
    )
    assert {status for status, _, _ in bodies} == {200}
    assert len({body["api_key"] for _, _, body in bodies}) == 100
    assert len(server.keys("sub-1")) == 101 and server.keys_created == 100


async def test_generate_conflict(
    server: FakeProvisioningServer, http: aiohttp.ClientSession
) -> None:
    status, _, body = await call(http, "POST", url(server), json={"name": "key-1"})
    assert status == 409 and "already exists" in body["error"]["message"]
    assert names(server) == ["key-1"] and server.keys_created == 0


async def test_update(http: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    async with FakeProvisioningServer(keys_per_sub_account=2, clock=clock) as server:
        first, second = server.keys("sub-1")
        clock.now += 90
        status, _, body = await call(
            http,
            "PUT",
            url(server, key=first.api_key),
            json={"name": "renamed", "enabled": "false"},
        )
        assert status == 200
        assert body["name"] == "renamed" and body["enabled"] is False
        assert body["created_at"] == first.created_at == "2023-11-14T22:00:00Z"
        assert body["updated_at"] == "2023-11-14T22:01:30Z"
        held = server.keys("sub-1")[0]
        assert (held.name, held.enabled, held.updated_at) == ("renamed", False, body["updated_at"])
        # renaming to its own name is fine; to another key's name is a conflict
        ok = await call(http, "PUT", url(server, key=first.api_key), json={"name": "renamed"})
        assert ok[0] == 200
        conflict = await call(
            http, "PUT", url(server, key=second.api_key), json={"name": "renamed"}
        )
        assert conflict[0] == 409 and server.keys("sub-1")[1].name == "key-2"
        # the old name is free again
        assert (await call(http, "POST", url(server), json={"name": "key-1"}))[0] == 200
        # an empty update still touches updated_at; enabled as a JSON boolean
        clock.now += 60
        status, _, body = await call(http, "PUT", url(server, key=second.api_key), json={})
        assert status == 200 and body["updated_at"] == "2023-11-14T22:02:30Z"
        body = (await call(http, "PUT", url(server, key=first.api_key), json={"enabled": True}))[2]
        assert body["enabled"] is True and server.keys("sub-1")[0].enabled


async def test_dedicated_for_is_a_list_and_moves(
    http: aiohttp.ClientSession,
) -> None:
    async with FakeProvisioningServer(keys_per_sub_account=3) as server:
        a, b, c = (key.api_key for key in server.keys("sub-1"))
        body = (await call(http, "PUT", url(server, key=a), json={"dedicated_for": "webhooks"}))[2]
        assert body["dedicated_for"] == ["webhooks"]
        listed = (await call(http, "GET", url(server)))[2]["access_keys"]
        assert {k["api_key"]: k.get("dedicated_for") for k in listed} == {
            a: ["webhooks"],
            b: None,
            c: None,
        }
        # dedicating another key un-dedicates the previous one
        await call(http, "PUT", url(server, key=b), json={"dedicated_for": "webhooks"})
        assert [k.dedicated_for for k in server.keys("sub-1")] == [(), ("webhooks",), ()]
        # other updates keep the dedication
        body = (await call(http, "PUT", url(server, key=b), json={"name": "hooks"}))[2]
        assert body["dedicated_for"] == ["webhooks"]
        # deleting the dedicated key drops the dedication
        assert (await call(http, "DELETE", url(server), params={"name": "hooks"}))[0] == 200
        assert [k.dedicated_for for k in server.keys("sub-1")] == [(), ()]
        listed = (await call(http, "GET", url(server)))[2]["access_keys"]
        assert all("dedicated_for" not in k for k in listed)


async def test_delete_and_delete_by_name(http: aiohttp.ClientSession) -> None:
    async with FakeProvisioningServer(keys_per_sub_account=3) as server:
        first = server.keys("sub-1")[0]
        status, headers, body = await call(http, "DELETE", url(server, key=first.api_key))
        assert (status, body) == (200, {"message": "ok"})
        assert headers["Content-Type"] == "application/json"
        assert names(server) == ["key-2", "key-3"]
        assert (await call(http, "DELETE", url(server, key=first.api_key)))[0] == 404
        status, _, body = await call(http, "DELETE", url(server), params={"name": "key-3"})
        assert (status, body) == (200, {"message": "ok"})
        assert names(server) == ["key-2"]
        status, _, body = await call(http, "DELETE", url(server), params={"name": "key-3"})
        assert status == 404 and body["error"]["message"]
        assert names(server) == ["key-2"]


async def test_not_found(server: FakeProvisioningServer, http: aiohttp.ClientSession) -> None:
    key = server.keys("sub-1")[0].api_key
    cases = [
        ("GET", url(server, account="other"), None),
        ("GET", url(server, sub="nope"), None),
        ("POST", url(server, sub="nope"), {"name": "x"}),
        ("PUT", url(server, key="123456789012345"), {"name": "x"}),
        ("DELETE", url(server, key="123456789012345"), None),
        ("PUT", url(server, sub="nope", key=key), {"name": "x"}),
        ("DELETE", url(server) + "?name=missing", None),
        ("GET", server.url + "/v1_1/provisioning/accounts/fake-account", None),
        ("PATCH", url(server, key=key), {"name": "x"}),  # known path, unknown method
        ("GET", url(server, key=key), None),
    ]
    for method, target, payload in cases:
        status, headers, body = await call(http, method, target, json=payload)
        assert status == 404, (method, target)
        assert headers["Content-Type"] == "application/json"
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert names(server) == ["key-1"] and server.keys_created == 0
    assert [entry.status for entry in server.journal] == [404] * len(cases)


@pytest.mark.parametrize(
    ("method", "query", "payload"),
    [
        ("POST", "", b"{not json"),
        ("POST", "", b""),
        ("POST", "", b'["a list"]'),
        ("POST", "", b'{"name": 5}'),
        ("POST", "", b'{"name": null}'),
        ("POST", "", b'{"enabled": "yes"}'),
        ("POST", "", b'{"enabled": 1}'),
        ("POST", "", b'{"enabled": "True"}'),
        ("PUT", "", b"nope"),
        ("PUT", "", b'{"dedicated_for": "email"}'),
        ("PUT", "", b'{"dedicated_for": ["webhooks"]}'),
        ("PUT", "", b'{"dedicated_for": null}'),
        ("PUT", "", b'{"enabled": null}'),
        ("GET", "?sort_by=secret", None),
        ("GET", "?sort_order=up", None),
        ("GET", "?page=0", None),
        ("GET", "?page=101", None),
        ("GET", "?page=x", None),
        ("GET", "?page=1.5", None),
        ("GET", "?page_size=0", None),
        ("GET", "?page_size=-1", None),
        ("GET", "?page_size=", None),
        ("DELETE", "", None),
        ("DELETE", "?name=", None),
    ],
)
async def test_bad_requests(
    server: FakeProvisioningServer,
    http: aiohttp.ClientSession,
    method: str,
    query: str,
    payload: bytes | None,
) -> None:
    before = server.keys("sub-1")
    key = before[0].api_key
    target = url(server, key=key if method == "PUT" else None) + query
    status, headers, body = await call(http, method, target, data=payload)
    assert status == 400
    assert headers["Content-Type"] == "application/json"
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert server.keys("sub-1") == before and server.keys_created == 0


async def test_auth(server: FakeProvisioningServer) -> None:
    wrong = aiohttp.encode_basic_auth("fake-key", "wrong")
    other_user = aiohttp.encode_basic_auth("other", "fake-secret")
    async with aiohttp.ClientSession() as anonymous:
        for headers in ({}, {"Authorization": wrong}, {"Authorization": other_user}):
            for method in ("GET", "POST"):
                status, response_headers, body = await call(
                    anonymous, method, url(server), json={"name": "x"}, headers=headers
                )
                assert status == 401
                assert response_headers["Content-Type"] == "application/json"
                assert body == {"error": {"message": "Invalid credentials"}}
        # the scheme is case-insensitive, as HTTP says
        lower = {"Authorization": "basic " + AUTH.split(" ", 1)[1]}
        assert (await call(anonymous, "GET", url(server), headers=lower))[0] == 200
    assert names(server) == ["key-1"] and server.keys_created == 0
    assert server.stats.by_status == {401: 6, 200: 1}


async def test_sorting(http: aiohttp.ClientSession) -> None:
    async with FakeProvisioningServer(keys_per_sub_account=0) as server:
        for name, enabled in [("b", True), ("d", False), ("a", True), ("c", False)]:
            server.add_key("sub-1", name=name, enabled=enabled)
        by_key = sorted(server.keys("sub-1"), key=lambda k: k.api_key)

        async def listed(**params: str) -> list[str]:
            status, _, body = await call(http, "GET", url(server), params=params)
            assert status == 200 and body["total"] == 4
            return [key["name"] for key in body["access_keys"]]

        assert await listed() == ["c", "a", "d", "b"]  # newest first
        assert await listed(sort_by="created_at", sort_order="asc") == ["b", "d", "a", "c"]
        assert await listed(sort_by="name", sort_order="asc") == ["a", "b", "c", "d"]
        assert await listed(sort_by="name") == ["d", "c", "b", "a"]
        assert await listed(sort_by="api_key", sort_order="asc") == [k.name for k in by_key]
        assert await listed(sort_by="api_key") == [k.name for k in reversed(by_key)]
        # ties keep creation order, whatever the direction
        assert await listed(sort_by="enabled", sort_order="asc") == ["d", "c", "b", "a"]
        assert await listed(sort_by="enabled") == ["b", "a", "d", "c"]


async def test_paging(http: aiohttp.ClientSession) -> None:
    async with FakeProvisioningServer(keys_per_sub_account=25) as server:

        async def page(**params: str) -> list[str]:
            params.setdefault("sort_order", "asc")
            status, _, body = await call(http, "GET", url(server), params=params)
            assert status == 200 and body["total"] == 25
            return [key["name"] for key in body["access_keys"]]

        everything = [f"key-{i}" for i in range(1, 26)]
        assert await page() == everything  # no paging parameter: all keys
        assert await page(page_size="7") == everything[:7]  # page defaults to 1
        assert await page(page="2", page_size="7") == everything[7:14]
        assert await page(page="4", page_size="7") == everything[21:]
        assert await page(page="5", page_size="7") == []
        assert await page(page="2") == everything[DEFAULT_PAGE_SIZE : 2 * DEFAULT_PAGE_SIZE]
        assert await page(page="100", page_size="1") == []
        assert await page(page_size="1000") == everything


# --- rate limiting ------------------------------------------------------------------------------


async def test_rate_limit_headers_and_420(http: aiohttp.ClientSession) -> None:
    clock = FakeClock(T0 + 0.5)
    policy = RateLimitPolicy(limit=3, window=1.0)
    async with FakeProvisioningServer(rate_limit=policy, clock=clock) as server:
        seen = []
        for i in range(5):
            status, headers, body = await call(http, "POST", url(server), json={"name": f"n{i}"})
            assert headers["X-FeatureRateLimit-Limit"] == "3"
            assert headers["X-FeatureRateLimit-Reset"] == formatdate(T0 + 1, usegmt=True)
            assert "Retry-After" not in headers
            seen.append((status, headers["X-FeatureRateLimit-Remaining"]))
        assert seen == [(200, "2"), (200, "1"), (200, "0"), (420, "0"), (420, "0")]
        assert body == {"error": {"message": "Rate Limit Exceeded"}}
        # rejected requests touched no state
        assert names(server) == ["key-1", "n0", "n1", "n2"] and server.keys_created == 3
        # a 401 is answered before rate limiting, with the headers, and consumes nothing
        async with aiohttp.ClientSession() as anonymous:
            status, headers, _ = await call(anonymous, "GET", url(server))
        assert status == 401 and headers["X-FeatureRateLimit-Remaining"] == "0"
        # the next window starts with a fresh budget
        clock.now = T0 + 1.0
        status, headers, _ = await call(http, "GET", url(server))
        assert status == 200 and headers["X-FeatureRateLimit-Remaining"] == "2"
        assert headers["X-FeatureRateLimit-Reset"] == formatdate(T0 + 2, usegmt=True)
        stats = server.stats
        assert (stats.received, stats.rate_limited) == (7, 2)
        assert stats.by_status == {200: 4, 420: 2, 401: 1}
        assert [e.status for e in server.journal if e.status in (420, 429)] == [420, 420]


@pytest.mark.parametrize(
    ("retry_after", "window", "now", "expected"),
    [
        ("seconds", 1.0, T0 + 0.25, "1"),
        ("seconds", 10.0, T0 + 2.5, "8"),  # 7.5 s left, rounded up
        ("date", 10.0, T0 + 2.5, formatdate(T0 + 10, usegmt=True)),
        (None, 10.0, T0, None),
    ],
)
async def test_rate_limit_429_and_retry_after(
    http: aiohttp.ClientSession,
    retry_after: Any,
    window: float,
    now: float,
    expected: str | None,
) -> None:
    policy = RateLimitPolicy(limit=1, window=window, status=429, retry_after=retry_after)
    async with FakeProvisioningServer(rate_limit=policy, clock=FakeClock(now)) as server:
        first = await call(http, "GET", url(server))
        assert first[0] == 200 and "Retry-After" not in first[1]
        status, headers, body = await call(http, "GET", url(server))
        assert status == 429 and body["error"]["message"]
        assert headers.get("Retry-After") == expected
        assert server.stats.rate_limited == 1


async def test_rate_limit_reset_dates(http: aiohttp.ClientSession) -> None:
    clock = FakeClock(T0 + 0.3)
    async with FakeProvisioningServer(clock=clock) as server:
        # a sub-second window resets at T0 + 0.5, announced as the next whole second
        server.rate_limit = RateLimitPolicy(limit=5, window=0.25)
        headers = (await call(http, "GET", url(server)))[1]
        assert headers["X-FeatureRateLimit-Reset"] == formatdate(T0 + 1, usegmt=True)
        # an hourly window, set at runtime, resets at the next whole hour
        clock.now = T0 + 3600 + 10
        server.rate_limit = RateLimitPolicy(limit=1, window=3600)
        headers = (await call(http, "GET", url(server)))[1]
        assert headers["X-FeatureRateLimit-Reset"] == formatdate(T0 + 7200, usegmt=True)
        status, headers, _ = await call(http, "GET", url(server))
        assert status == 420
        assert parsedate_to_datetime(headers["X-FeatureRateLimit-Reset"]).timestamp() == T0 + 7200
        # a tuple is a policy too; None removes the headers
        server.rate_limit = (2, 1.0)
        assert server.rate_limit == RateLimitPolicy(limit=2, window=1.0)
        assert (await call(http, "GET", url(server)))[1]["X-FeatureRateLimit-Limit"] == "2"
        server.rate_limit = None
        assert "X-FeatureRateLimit-Limit" not in (await call(http, "GET", url(server)))[1]


async def test_rate_limit_window_resets_in_real_time(http: aiohttp.ClientSession) -> None:
    async with FakeProvisioningServer(rate_limit=RateLimitPolicy(limit=2, window=0.5)) as server:
        statuses = []
        for _ in range(6):  # at most 2 windows can pass: a 420 must show up
            status, headers, _ = await call(http, "GET", url(server))
            statuses.append(status)
            if status == 420:
                break
        assert statuses[-1] == 420
        reset = parsedate_to_datetime(headers["X-FeatureRateLimit-Reset"]).timestamp()
        assert time.time() < reset <= time.time() + 1.5
        await asyncio.sleep(reset - time.time() + 0.05)
        status, headers, _ = await call(http, "GET", url(server))
        assert status == 200 and headers["X-FeatureRateLimit-Remaining"] == "1"


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        RateLimitPolicy(limit=1, status=503)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        RateLimitPolicy(limit=1, window=0)
    with pytest.raises(ValueError):
        RateLimitPolicy(limit=-1)
    with pytest.raises(ValueError):
        Faults(rate=1.5)
    with pytest.raises(ValueError):
        Faults(kinds=["nope"])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        Faults(routes={"patch": 0.5})  # type: ignore[dict-item]
    fake = FakeProvisioningServer()
    with pytest.raises(ValueError):
        fake.inject("nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        fake.inject("500", route="patch")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        fake.inject("500", count=0)


# --- faults -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "content_type"),
    [
        ("500", 500, "application/json"),
        ("502", 502, "text/html"),
        ("503", 503, "text/html"),
        ("504", 504, "text/html"),
        ("html", 500, "text/html"),
    ],
)
async def test_error_faults_change_nothing(
    server: FakeProvisioningServer,
    http: aiohttp.ClientSession,
    kind: Any,
    status: int,
    content_type: str,
) -> None:
    server.inject(kind, route="generate")
    got, headers, body = await call(http, "POST", url(server), json={"name": "x"})
    assert (got, headers["Content-Type"]) == (status, content_type)
    if content_type == "text/html":
        assert body.startswith("<html>") and str(status) in body
    else:
        assert body == {"error": {"message": "Internal Server Error"}}
    assert names(server) == ["key-1"] and server.keys_created == 0
    assert (await call(http, "POST", url(server), json={"name": "x"}))[0] == 200  # used up
    assert [(e.status, e.fault) for e in server.journal] == [(status, kind), (200, None)]
    assert server.stats.faults == {kind: 1}


async def test_drop_before(server: FakeProvisioningServer, http: aiohttp.ClientSession) -> None:
    server.inject("drop_before", route="generate")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(http, "POST", url(server), json={"name": "x"})
    assert names(server) == ["key-1"] and server.keys_created == 0
    (entry,) = server.journal
    assert (entry.status, entry.fault, entry.body) == (None, "drop_before", {"name": "x"})
    assert server.stats.dropped == 1
    assert (await call(http, "POST", url(server), json={"name": "x"}))[0] == 200


async def test_drop_after_commits(
    server: FakeProvisioningServer, http: aiohttp.ClientSession
) -> None:
    server.inject("drop_after", route="generate")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(http, "POST", url(server), json={"name": "x"})
    assert names(server) == ["key-1", "x"] and server.keys_created == 1
    assert [(e.status, e.fault) for e in server.journal] == [(None, "drop_after")]
    # a retry of the same generate now conflicts: the first attempt had succeeded
    assert (await call(http, "POST", url(server), json={"name": "x"}))[0] == 409


async def test_drop_on_idempotent_route_is_retried_by_aiohttp(
    server: FakeProvisioningServer, http: aiohttp.ClientSession
) -> None:
    """aiohttp resends GET/PUT/DELETE once after a disconnect; the journal shows it."""
    key = server.keys("sub-1")[0].api_key
    server.inject("drop_after", route="delete")
    status, _, body = await call(http, "DELETE", url(server, key=key))
    assert status == 404 and "not found" in body["error"]["message"]  # the retry's answer
    assert [(e.route, e.status, e.fault) for e in server.journal] == [
        ("delete", None, "drop_after"),
        ("delete", 404, None),
    ]
    assert server.keys("sub-1") == []
    server.inject("drop_before", route="list", count=2)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(http, "GET", url(server))
    assert server.stats.dropped == 3


async def test_truncated(server: FakeProvisioningServer, http: aiohttp.ClientSession) -> None:
    server.inject("truncated", route="generate")
    async with http.post(url(server), json={"name": "x"}) as response:
        assert response.status == 200 and response.content_type == "application/json"
        text = await response.text()
    with pytest.raises(ValueError):
        json.loads(text)
    held = server.keys("sub-1")[1]
    assert held.name == "x" and server.keys_created == 1  # committed
    full = json.dumps(
        {
            "name": "x",
            "api_key": held.api_key,
            "api_secret": held.api_secret,
            "created_at": held.created_at,
            "updated_at": held.updated_at,
            "enabled": True,
        },
        separators=(",", ":"),
    )
    assert text == full[: len(full) // 2]


async def test_delay(http: aiohttp.ClientSession) -> None:
    faults = Faults(delay=0.2)  # rate 0: only the delay setting is used
    async with FakeProvisioningServer(faults=faults) as server:
        server.inject("delay", route="list")
        started = time.monotonic()
        status, _, body = await call(http, "GET", url(server))
        assert time.monotonic() - started >= 0.19
        assert status == 200 and body["total"] == 1
        assert server.journal[0].fault == "delay"


async def test_scripted_faults_match_route_and_count(
    server: FakeProvisioningServer, http: aiohttp.ClientSession
) -> None:
    server.inject("503", route="generate", count=2)
    server.inject("500")  # any route, queued after the first
    assert (await call(http, "GET", url(server)))[0] == 500
    assert (await call(http, "GET", url(server)))[0] == 200
    statuses = [(await call(http, "POST", url(server), json={}))[0] for _ in range(3)]
    assert statuses == [503, 503, 200]


async def test_faults_come_after_auth_and_rate_limit(http: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    async with FakeProvisioningServer(rate_limit=RateLimitPolicy(limit=0), clock=clock) as server:
        server.inject("500")
        async with aiohttp.ClientSession() as anonymous:
            assert (await call(anonymous, "GET", url(server)))[0] == 401
        assert (await call(http, "GET", url(server)))[0] == 420
        server.rate_limit = RateLimitPolicy(limit=5)
        status, headers, _ = await call(http, "GET", url(server))
        assert status == 500 and headers["X-FeatureRateLimit-Remaining"] == "4"
        assert [e.fault for e in server.journal] == [None, None, "500"]


async def faulted_statuses(seed: int, count: int = 40) -> list[int]:
    faults = Faults(rate=0.5, kinds=("500", "502", "503"))
    async with (
        FakeProvisioningServer(faults=faults, seed=seed) as server,
        aiohttp.ClientSession(headers={"Authorization": AUTH}) as http,
    ):
        return [(await call(http, "POST", url(server), json={}))[0] for _ in range(count)]


async def test_random_faults_reproducible_with_seed() -> None:
    first = await faulted_statuses(seed=7)
    assert first == await faulted_statuses(seed=7)
    assert first != await faulted_statuses(seed=8)
    assert {200, 500, 502, 503} == set(first)


async def test_random_faults_do_not_depend_on_interleaving(http: aiohttp.ClientSession) -> None:
    # Concurrent callers reach the server in any order; a seeded run must still repeat.
    faults = Faults(rate=0.5, kinds=("500", "503"))

    async def statuses(order: list[str]) -> dict[str, list[int]]:
        seen: dict[str, list[int]] = {"a": [], "b": []}
        async with FakeProvisioningServer(sub_accounts=["a", "b"], faults=faults, seed=9) as fake:
            for sub in order:
                seen[sub].append((await call(http, "GET", url(fake, sub=sub)))[0])
        return seen

    one_then_other = await statuses(["a"] * 20 + ["b"] * 20)
    alternating = await statuses(["a", "b"] * 20)
    assert one_then_other == alternating
    assert one_then_other["a"] != one_then_other["b"]
    assert {200, 500, 503} == set(one_then_other["a"])


async def test_random_faults_per_route(http: aiohttp.ClientSession) -> None:
    faults = Faults(rate=0.0, kinds=["504"], routes={"generate": 1.0})
    async with FakeProvisioningServer(faults=faults, seed=3) as server:
        assert [(await call(http, "GET", url(server)))[0] for _ in range(5)] == [200] * 5
        assert [(await call(http, "POST", url(server), json={}))[0] for _ in range(5)] == [504] * 5
        server.faults = None
        assert (await call(http, "POST", url(server), json={}))[0] == 200
        assert server.stats.faults == {"504": 5} and server.keys_created == 1


# --- journal ------------------------------------------------------------------------------------


async def test_journal(server: FakeProvisioningServer, http: aiohttp.ClientSession) -> None:
    before = time.time()
    await call(http, "GET", url(server), params={"sort_by": "name"})
    await call(http, "POST", url(server), json={"name": "j", "enabled": "true"})
    await call(http, "PUT", url(server, key="1"), data=b"not json")
    await call(http, "DELETE", url(server), params={"name": "j"})
    first, second, third, fourth = server.journal
    assert first == JournalEntry(
        method="GET",
        path="/v1_1/provisioning/accounts/fake-account/sub_accounts/sub-1/access_keys",
        query={"sort_by": "name"},
        headers=first.headers,
        body=None,
        status=200,
        fault=None,
        time=first.time,
        route="list",
        query_pairs=(("sort_by", "name"),),
    )
    assert first.headers["authorization"] == AUTH  # case-insensitive
    assert before <= first.time <= second.time <= time.time()
    assert (second.route, second.body, second.status) == (
        "generate",
        {"name": "j", "enabled": "true"},
        200,
    )
    assert (third.route, third.body, third.status) == ("update", "not json", 400)
    assert (fourth.route, fourth.query, fourth.status) == ("delete_by_name", {"name": "j"}, 200)
    assert server.stats.received == 4 and server.stats.by_status == {200: 3, 400: 1}
    server.clear_journal()
    assert server.journal == [] and server.stats.received == 0 and server.stats.by_status == {}
    assert server.keys_created == 1  # state is kept


async def test_journal_can_be_off(http: aiohttp.ClientSession) -> None:
    async with FakeProvisioningServer(keep_journal=False) as server:
        await call(http, "GET", url(server))
        assert server.journal == [] and server.stats.by_status == {200: 1}


# --- running: in a thread, standalone, as a fixture --------------------------------------------


def get_json(target: str) -> tuple[int, Any]:
    request = urllib.request.Request(target, headers={"Authorization": AUTH})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.load(exc)


def test_run_in_thread_from_sync_code() -> None:
    server = FakeProvisioningServer(sub_accounts=["a"], port=0)
    with server.run_in_thread() as running:
        assert running is server and re.fullmatch(r"http://127\.0\.0\.1:\d+", server.url)
        server.add_key("a", name="arranged")  # from this thread while the loop serves
        status, body = get_json(url(server, sub="a"))
        assert status == 200 and body["total"] == 2
        target = url(server, sub="a")
    with pytest.raises(urllib.error.URLError):
        get_json(target)
    with pytest.raises(RuntimeError):
        _ = server.url
    assert server.stats.received == 1


async def test_start_stop_and_fixed_port() -> None:
    first = FakeProvisioningServer()
    await first.start()
    port = first.port
    try:
        with pytest.raises(RuntimeError, match="already started"):
            await first.start()
        with pytest.raises(OSError):
            await FakeProvisioningServer(port=port).start()  # the port is taken
    finally:
        await first.stop()
    await first.stop()  # idempotent
    async with FakeProvisioningServer(port=port) as fixed:
        assert fixed.url == f"http://127.0.0.1:{port}"


def cli_env() -> dict[str, str]:
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_standalone_cli(http: aiohttp.ClientSession, signum: int) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cldprov_async.testing",
        *("--port", "0", "--account-id", "acc", "--api-key", "fake-key"),
        *("--api-secret", "fake-secret", "--sub-account", "A", "--sub-account", "B"),
        *("--rate-limit", "100/60", "--rate-limit-status", "429", "--retry-after", "date"),
        *("--keys-per-sub-account", "2", "--seed", "4", "--fault-rate", "0.0001"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(),
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), timeout=15)
        match = re.fullmatch(rb"CLDPROV_FAKE_URL=(http://127\.0\.0\.1:\d+)\n", line)
        assert match, line
        account = await asyncio.wait_for(process.stdout.readline(), timeout=15)
        assert account == b"CLOUDINARY_ACCOUNT_URL=account://fake-key:fake-secret@acc\n"
        base = match.group(1).decode()
        target = f"{base}/v1_1/provisioning/accounts/acc/sub_accounts/B/access_keys"
        status, headers, body = await call(http, "GET", target)
        assert status == 200 and body["total"] == 2
        assert headers["X-FeatureRateLimit-Limit"] == "100"
        assert (await call(http, "GET", target.replace("/B/", "/C/")))[0] == 404
    finally:
        if process.returncode is None:
            process.send_signal(signum)
    rest, errors = await asyncio.wait_for(process.communicate(), timeout=15)
    assert process.returncode == 0, errors
    assert rest == b""


def test_cli_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc_info:
        main(["--rate-limit", "lots"])
    assert exc_info.value.code == 2
    assert "N/SECONDS" in capsys.readouterr().err


PLUGIN_ARGS = ("-p", "no:cldprov_async", "-p", "cldprov_async._pytest_plugin")
"""Load the plugin by module name whether or not its entry point is installed."""
INNER_INI = "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"


def test_pytest_fixture_and_marker(pytester: pytest.Pytester) -> None:
    pytester.makeini(INNER_INI)
    pytester.makepyfile(
        """
        import json, urllib.error, urllib.request

        import aiohttp
        import pytest

        from cldprov_async.testing import FakeProvisioningServer, RateLimitPolicy

        AUTH = aiohttp.encode_basic_auth("fake-key", "fake-secret")
        seen = []

        def target(server, sub):
            return f"{server.url}/v1_1/provisioning/accounts/acc/sub_accounts/{sub}/access_keys"

        @pytest.mark.cldprov_fake(account_id="acc", sub_accounts=["x", "y"], rate_limit=(5, 60))
        def test_sync(cldprov_fake_server):
            assert isinstance(cldprov_fake_server, FakeProvisioningServer)
            request = urllib.request.Request(target(cldprov_fake_server, "y"))
            request.add_header("Authorization", AUTH)
            with urllib.request.urlopen(request) as response:
                assert json.load(response)["total"] == 1
                assert response.headers["X-FeatureRateLimit-Limit"] == "5"
            seen.append(target(cldprov_fake_server, "y"))

        def test_server_was_stopped():
            with pytest.raises(urllib.error.URLError):
                urllib.request.urlopen(seen[0], timeout=5)

        @pytest.mark.cldprov_fake(account_id="acc")
        class TestAsync:
            @pytest.mark.cldprov_fake(seed=3, rate_limit=RateLimitPolicy(2, status=429))
            async def test_async(self, cldprov_fake_server):
                assert cldprov_fake_server.rate_limit.status == 429
                async with aiohttp.ClientSession(headers={"Authorization": AUTH}) as http:
                    async with http.post(target(cldprov_fake_server, "sub-1"), json={}) as r:
                        assert r.status == 200
                assert cldprov_fake_server.keys_created == 1

            async def test_defaults(self, cldprov_fake_server):
                assert cldprov_fake_server.account_id == "acc"
                assert cldprov_fake_server.rate_limit is None
        """
    )
    result = pytester.runpytest("--strict-markers", *PLUGIN_ARGS)
    result.assert_outcomes(passed=4)


def test_pytest_marker_rejects_positional_arguments(pytester: pytest.Pytester) -> None:
    pytester.makeini(INNER_INI)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.cldprov_fake(5)
        def test_bad(cldprov_fake_server):
            pass
        """
    )
    result = pytester.runpytest(*PLUGIN_ARGS)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*keyword arguments only*"])


# --- the package's own client -------------------------------------------------------------------


async def test_client_points_at_the_server(server: FakeProvisioningServer) -> None:
    client_module = pytest.importorskip("cldprov_async", reason="the client is not written yet")
    if not hasattr(client_module, "CldProvisioning"):
        pytest.skip("cldprov_async.CldProvisioning is not written yet")
    client = server.client(timeout=5.0)
    assert isinstance(client, client_module.CldProvisioning)
    async with client:
        response = await client.access_keys.list({"sub_account_id": "sub-1"})
    assert [key.api_key for key in response.access_keys] == [server.keys("sub-1")[0].api_key]
    assert server.journal[0].headers["Authorization"] == AUTH

"""``client.product_environments.list``: the wire (query encoding), the models, the fake
server's listing and filters, and answers far beyond the access-key response cap."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from aiohttp import web

from cldprov_async import (
    CldProvisioning,
    ProductEnvironment,
    ProductEnvironmentAccessKey,
    ProductEnvironmentsResponse,
    ResponseTooLargeError,
    ResponseValidationError,
    Security,
)
from cldprov_async.testing import FakeProvisioningServer, RateLimitPolicy

LISTING = "/v1_1/provisioning/accounts/fake-account/sub_accounts"


def arranged() -> FakeProvisioningServer:
    server = FakeProvisioningServer(sub_accounts=())
    server.add_sub_account("id-1", name="Prod EU", cloud_name="prod-eu")
    server.add_sub_account("id-2", name="production us", cloud_name="prod-us")
    server.add_sub_account("id-3", name="Staging", cloud_name="staging", enabled=False)
    server.add_sub_account("id-4", name="Prod old", cloud_name="prod-old", enabled=False)
    return server


async def test_lists_every_environment_with_its_keys() -> None:
    async with arranged() as server, server.client() as client:
        got = await client.product_environments.list()
        assert isinstance(got, ProductEnvironmentsResponse)
        assert [e.id for e in got.sub_accounts] == ["id-1", "id-2", "id-3", "id-4"]
        env = got.sub_accounts[0]
        assert isinstance(env, ProductEnvironment)
        assert (env.name, env.cloud_name, env.enabled) == ("Prod EU", "prod-eu", True)
        assert isinstance(env.created_at, datetime) and env.created_at.tzinfo is not None
        (key,) = env.api_access_keys
        held = server.keys("id-1")[0]
        assert isinstance(key, ProductEnvironmentAccessKey)
        assert (key.key, key.secret, key.enabled) == (held.api_key, held.api_secret, True)
        assert held.api_secret not in repr(got)
    (entry,) = server.journal
    assert (entry.method, entry.path, entry.query_pairs, entry.status) == ("GET", LISTING, (), 200)


@pytest.mark.parametrize(
    ("kwargs", "pairs", "ids"),
    [
        ({"enabled": True}, (("enabled", "true"),), ["id-1", "id-2"]),
        ({"enabled": False}, (("enabled", "false"),), ["id-3", "id-4"]),
        ({"prefix": "PROD"}, (("prefix", "PROD"),), ["id-1", "id-2", "id-4"]),
        (
            {"prefix": "prod", "enabled": True},
            (("enabled", "true"), ("prefix", "prod")),
            ["id-1", "id-2"],
        ),
        (
            {"cloud_names": ["prod-us", "staging"]},
            (("cloud_names[]", "prod-us"), ("cloud_names[]", "staging")),
            ["id-2", "id-3"],
        ),
        (
            {"ids": ["id-4", "id-1"], "enabled": True},  # with ids the API ignores the rest
            (("enabled", "true"), ("ids[]", "id-4"), ("ids[]", "id-1")),
            ["id-1", "id-4"],
        ),
    ],
)
async def test_filters_go_on_the_query_as_the_classic_sdk_sends_them(
    kwargs: dict[str, Any], pairs: tuple[tuple[str, str], ...], ids: list[str]
) -> None:
    async with arranged() as server, server.client() as client:
        got = await client.product_environments.list(**kwargs)
    assert [e.id for e in got.sub_accounts] == ids
    (entry,) = server.journal
    assert entry.query_pairs == pairs


async def answer_with(body: object, **kwargs: Any) -> list[str]:
    """List against a one-route server answering ``body``; the raw paths it received."""
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.raw_path)
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/v1_1/provisioning/accounts/acc/sub_accounts", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with CldProvisioning("acc", Security("k", "s"), server_url=url) as client:
            await client.product_environments.list(**kwargs)
    finally:
        await runner.cleanup()
    return seen


async def test_the_raw_query_string_on_the_wire() -> None:
    seen = await answer_with({"sub_accounts": []}, enabled=False, ids=["a b", "c&d"], prefix="x/y")
    assert seen == [
        "/v1_1/provisioning/accounts/acc/sub_accounts"
        "?enabled=false&ids%5B%5D=a+b&ids%5B%5D=c%26d&prefix=x/y"
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"sub_accounts": "nope"},
        {"sub_accounts": [{"id": 5}]},
        {"sub_accounts": [{"id": "a", "api_access_keys": [{"key": "k"}]}]},
        ["not", "an", "object"],
    ],
)
async def test_a_malformed_listing_is_a_typed_error(body: object) -> None:
    with pytest.raises(ResponseValidationError):
        await answer_with(body)


async def test_unknown_fields_are_ignored() -> None:
    assert len(await answer_with({"sub_accounts": [{"id": "a", "new": 1}], "more": True})) == 1


async def test_fake_server_takes_repeated_ids_without_brackets() -> None:
    import aiohttp

    async with arranged() as server, aiohttp.ClientSession() as http:
        auth = aiohttp.encode_basic_auth(server.api_key, server.api_secret)
        url = f"{server.url}{LISTING}?ids=id-2&ids=id-3&ids[]=id-4"
        async with http.get(url, headers={"Authorization": auth}) as resp:
            body = await resp.json()
        async with http.get(f"{server.url}{LISTING}") as resp:
            assert resp.status == 401
    assert [e["id"] for e in body["sub_accounts"]] == ["id-2", "id-3", "id-4"]
    assert set(body["sub_accounts"][0]) == {
        "cloud_name",
        "name",
        "enabled",
        "id",
        "api_access_keys",
        "created_at",
        "updated_at",
    }


@pytest.mark.parametrize(
    ("kwargs", "error", "param"),
    [
        ({"ids": [f"i{n}" for n in range(101)]}, ValueError, "ids"),
        ({"cloud_names": [f"c{n}" for n in range(101)]}, ValueError, "cloud_names"),
        ({"ids": "id-1"}, TypeError, "ids"),
        ({"ids": [1]}, TypeError, "ids"),
        ({"ids": [""]}, ValueError, "ids"),
        ({"cloud_names": None, "enabled": "true"}, TypeError, "enabled"),
        ({"prefix": 3}, TypeError, "prefix"),
        ({"timeout_ms": 0}, ValueError, "timeout_ms"),
    ],
)
async def test_bad_input_fails_before_sending(
    kwargs: dict[str, Any], error: type[Exception], param: str
) -> None:
    async with arranged() as server, server.client() as client:
        with pytest.raises(error, match=param):
            await client.product_environments.list(**kwargs)
    assert server.journal == []


async def test_a_hundred_ids_are_fine() -> None:
    async with arranged() as server, server.client() as client:
        ids = ["id-1"] + [f"none-{n}" for n in range(99)]
        got = await client.product_environments.list(ids=ids)
    assert [e.id for e in got.sub_accounts] == ["id-1"]
    assert len(server.journal[0].query_pairs) == 100


async def test_listing_obeys_the_rate_limit_and_faults() -> None:
    policy = RateLimitPolicy(limit=1, window=0.5)
    async with arranged() as server, server.client() as client:
        server.rate_limit = policy
        server.inject("503", route="list_product_environments")
        got = await client.product_environments.list()
        assert len(got.sub_accounts) == 4
        assert client.rate_limit is not None and client.rate_limit.limit == 1
    statuses = [e.status for e in server.journal]
    assert statuses[0] == 503 and statuses[-1] == 200
    assert all(e.route == "list_product_environments" for e in server.journal)


@pytest.mark.slow
async def test_a_listing_far_over_the_access_key_cap_is_read_by_default() -> None:
    """20,000 environments with three keys each: ~6 MiB, over the 4 MiB access-key cap."""
    server = FakeProvisioningServer(sub_accounts=(), keys_per_sub_account=3, keep_journal=False)
    for n in range(20_000):
        server.add_sub_account(f"sub-{n:05d}", name=f"Environment number {n}")
    async with server, server.client() as client:
        got = await client.product_environments.list()
        assert len(got.sub_accounts) == 20_000
        assert all(len(e.api_access_keys) == 3 for e in got.sub_accounts)
        async with server.client(max_listing_bytes=1024) as small:
            with pytest.raises(ResponseTooLargeError):
                await small.product_environments.list()
    assert server.stats.received == 2

"""What each operation puts on the wire, checked on what a real server on 127.0.0.1 received."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import unquote

import aiohttp
import pytest
from aioresponses import aioresponses
from conftest import RecordingServer
from samples import (
    ACCESS_KEYS,
    ACCOUNT,
    API_KEY,
    AUTH,
    KEY,
    KEYS_PATH,
    MAIN_KEY,
    OK,
    ONCE,
    SECRET,
    SUB,
)
from yarl import URL

import cldprov_async
from cldprov_async import (
    AccessKey,
    AccessKeysAPI,
    AccessKeysResponse,
    CldProvisioning,
    RetryConfig,
    Security,
    SuccessResponse,
)

ONE_KEY_PATH = f"{KEYS_PATH}/{API_KEY}"


def client_for(server: RecordingServer, **kwargs: Any) -> CldProvisioning:
    return CldProvisioning(ACCOUNT, Security(KEY, SECRET), server_url=server.url, **kwargs)


Call = Callable[[AccessKeysAPI, dict[str, Any]], Awaitable[object]]


class Op(NamedTuple):
    """One operation: how to call it (with per-call options) and what the wire must show."""

    name: str
    call: Call
    method: str
    path: str
    query: dict[str, str]
    body: Any  # the JSON body; None: no body
    answer: Any


OPS = [
    Op(
        "list",
        lambda api, kw: api.list(
            {
                "sub_account_id": SUB,
                "page_size": 10,
                "page": 2,
                "sort_by": cldprov_async.SortBy.NAME,
                "sort_order": "asc",
            },
            **kw,
        ),
        "GET",
        KEYS_PATH,
        {"page_size": "10", "page": "2", "sort_by": "name", "sort_order": "asc"},
        None,
        ACCESS_KEYS,
    ),
    Op(
        "generate",
        lambda api, kw: api.generate(SUB, {"name": "k"}, **kw),
        "POST",
        KEYS_PATH,
        {},
        {"name": "k"},
        MAIN_KEY,
    ),
    Op(
        "update",
        lambda api, kw: api.update(SUB, API_KEY, {"enabled": False}, **kw),
        "PUT",
        ONE_KEY_PATH,
        {},
        {"enabled": False},
        MAIN_KEY,
    ),
    Op(
        "delete_by_name",
        lambda api, kw: api.delete_by_name(SUB, "main_key", **kw),
        "DELETE",
        KEYS_PATH,
        {"name": "main_key"},
        None,
        OK,
    ),
    Op(
        "delete",
        lambda api, kw: api.delete(SUB, API_KEY, **kw),
        "DELETE",
        ONE_KEY_PATH,
        {},
        None,
        OK,
    ),
]
OP_IDS = [op.name for op in OPS]
RESULT_TYPES = {
    "list": AccessKeysResponse,
    "generate": AccessKey,
    "update": AccessKey,
    "delete_by_name": SuccessResponse,
    "delete": SuccessResponse,
}


@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
async def test_exact_wire(recording_server: RecordingServer, op: Op) -> None:
    recording_server.respond(json=op.answer)
    async with client_for(recording_server) as client:
        result = await op.call(client.access_keys, {})
    assert isinstance(result, RESULT_TYPES[op.name])
    [req] = recording_server.requests
    assert req.method == op.method
    assert req.raw_path == op.path
    assert sorted(req.query.items()) == sorted(op.query.items())  # exactly these, once each
    if op.body is None:
        assert req.body == b""
        assert "Content-Type" not in req.headers
    else:
        assert req.json() == op.body
        assert req.headers["Content-Type"] == "application/json"
    assert req.headers["Accept"] == "application/json"
    assert req.headers["Authorization"] == AUTH
    assert req.headers["User-Agent"].startswith(f"cldprov-async/{cldprov_async.__version__} ")


async def test_list_without_paging_sends_no_query(recording_server: RecordingServer) -> None:
    recording_server.respond(json=ACCESS_KEYS)
    async with client_for(recording_server) as client:
        await client.access_keys.list({"sub_account_id": SUB})
    [req] = recording_server.requests
    assert (req.method, req.raw_path, req.raw_query) == ("GET", KEYS_PATH, "")


@pytest.mark.parametrize(
    ("request_body", "sent"),
    [
        (None, {}),
        ({}, {}),
        ({"name": "k"}, {"name": "k"}),
        ({"enabled": False}, {"enabled": False}),
        ({"name": "k", "enabled": True}, {"name": "k", "enabled": True}),
        (cldprov_async.AccessKeyRequest(enabled=True), {"enabled": True}),
    ],
)
async def test_generate_sends_only_set_fields(
    recording_server: RecordingServer, request_body: Any, sent: dict[str, Any]
) -> None:
    recording_server.respond(json=MAIN_KEY)
    async with client_for(recording_server) as client:
        await client.access_keys.generate(SUB, request_body)
    [req] = recording_server.requests
    decoded = req.json()
    assert decoded == sent
    # JSON booleans, not the classic SDK's "true" strings
    assert all(type(decoded[k]) is type(v) for k, v in sent.items())


@pytest.mark.parametrize(
    ("request_body", "sent"),
    [
        ({}, {}),
        ({"name": "k"}, {"name": "k"}),
        ({"enabled": False}, {"enabled": False}),
        ({"dedicated_for": cldprov_async.DedicatedFor.WEBHOOKS}, {"dedicated_for": "webhooks"}),
        (
            cldprov_async.AccessKeyUpdateRequest(name="n", enabled=True, dedicated_for="webhooks"),
            {"name": "n", "enabled": True, "dedicated_for": "webhooks"},
        ),
    ],
)
async def test_update_sends_only_set_fields(
    recording_server: RecordingServer, request_body: Any, sent: dict[str, Any]
) -> None:
    recording_server.respond(json=MAIN_KEY)
    async with client_for(recording_server) as client:
        await client.access_keys.update(SUB, API_KEY, request_body)
    [req] = recording_server.requests
    assert (req.method, req.raw_path) == ("PUT", ONE_KEY_PATH)
    assert req.json() == sent


# --- path parameters stay in their segment ------------------------------------------------------

NASTY_IDS = ["a/b", "?x=1", "#frag", "a b", "..", ".", "é中", "%2F", "../../x", "a?b#c/d", "+&="]


@pytest.mark.parametrize("nasty", NASTY_IDS)
async def test_path_parameters_never_leave_their_segment(
    recording_server: RecordingServer, nasty: str
) -> None:
    recording_server.enqueue(json=OK)
    recording_server.enqueue(json=MAIN_KEY)
    recording_server.enqueue(json=ACCESS_KEYS)
    client = CldProvisioning(nasty, Security(KEY, SECRET), server_url=recording_server.url)
    async with client:
        await client.access_keys.delete(nasty, nasty)
        await client.access_keys.update(nasty, nasty, {})
        await client.access_keys.list({"sub_account_id": nasty})
    delete, update, listing = recording_server.requests
    for req in (delete, update):
        segments = req.raw_path.split("/")
        assert segments[:4] == ["", "v1_1", "provisioning", "accounts"]
        assert segments[5] == "sub_accounts"
        assert segments[7] == "access_keys"
        assert len(segments) == 9
        for seg in (segments[4], segments[6], segments[8]):
            assert unquote(seg) == nasty
            assert seg not in (".", "..")
            assert not set(seg) & set("/?# ")
        assert req.raw_query == ""
    segments = listing.raw_path.split("/")
    assert len(segments) == 8
    assert segments[-1] == "access_keys"
    assert unquote(segments[4]) == unquote(segments[6]) == nasty
    assert listing.raw_query == ""


@pytest.mark.parametrize("nasty", NASTY_IDS)
async def test_delete_by_name_query_round_trips(
    recording_server: RecordingServer, nasty: str
) -> None:
    recording_server.respond(json=OK)
    async with client_for(recording_server) as client:
        await client.access_keys.delete_by_name(SUB, nasty)
    [req] = recording_server.requests
    assert req.raw_path == KEYS_PATH
    assert list(req.query.items()) == [("name", nasty)]


# --- per-call options ---------------------------------------------------------------------------


@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
async def test_per_call_http_headers_are_sent(recording_server: RecordingServer, op: Op) -> None:
    recording_server.respond(json=op.answer)
    async with client_for(recording_server) as client:
        await op.call(client.access_keys, {"http_headers": {"X-Trace-Id": "t-1", "X-Other": "v"}})
        await op.call(client.access_keys, {})
    first, second = recording_server.requests
    assert first.headers["X-Trace-Id"] == "t-1"
    assert first.headers["X-Other"] == "v"
    assert first.headers["Authorization"] == AUTH  # still authenticated
    assert "X-Trace-Id" not in second.headers  # per call, not sticky


@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
async def test_retries_once_is_accepted(recording_server: RecordingServer, op: Op) -> None:
    recording_server.respond(json=op.answer)
    async with client_for(recording_server) as client:
        result = await op.call(client.access_keys, {"retries": ONCE})
    assert isinstance(result, RESULT_TYPES[op.name])
    assert len(recording_server.requests) == 1


async def test_per_call_retries_override_the_client_default(
    recording_server: RecordingServer,
) -> None:
    recording_server.respond(503, body="busy")
    fast = RetryConfig(max_attempts=3, backoff_initial=0.001, backoff_max=0.001)
    async with client_for(recording_server, retry_config=fast) as client:
        with pytest.raises(cldprov_async.APIError):
            await client.access_keys.list({"sub_account_id": SUB})
        assert len(recording_server.requests) == 3
        with pytest.raises(cldprov_async.APIError):
            await client.access_keys.list({"sub_account_id": SUB}, retries=ONCE)
    assert len(recording_server.requests) == 4


IDEMPOTENT_OPS = [op for op in OPS if op.method != "POST"]


@pytest.mark.parametrize("op", IDEMPOTENT_OPS, ids=[op.name for op in IDEMPOTENT_OPS])
async def test_timeout_ms_is_honoured(recording_server: RecordingServer, op: Op) -> None:
    recording_server.respond(json=op.answer, delay=1.5)
    async with client_for(recording_server) as client:
        started = time.monotonic()
        with pytest.raises(cldprov_async.RequestTimeoutError):
            await op.call(client.access_keys, {"timeout_ms": 100, "retries": ONCE})
        assert time.monotonic() - started < 1.0
    assert len(recording_server.requests) == 1


async def test_timeout_ms_overrides_a_shorter_client_timeout(
    recording_server: RecordingServer,
) -> None:
    recording_server.respond(json=OK, delay=0.3)
    async with client_for(recording_server, timeout=0.05) as client:
        assert isinstance(
            await client.access_keys.delete(SUB, API_KEY, timeout_ms=3000), SuccessResponse
        )
        with pytest.raises(cldprov_async.RequestTimeoutError):
            await client.access_keys.delete(SUB, API_KEY, retries=ONCE)


async def test_generate_timeout_is_an_unknown_outcome_not_a_silent_retry(
    recording_server: RecordingServer,
) -> None:
    recording_server.respond(json=MAIN_KEY, delay=1.5)
    async with client_for(recording_server) as client:
        with pytest.raises(cldprov_async.OutcomeUnknownError) as info:
            await client.access_keys.generate(SUB, {}, timeout_ms=100)
    assert isinstance(info.value, cldprov_async.TransportError)
    assert len(recording_server.requests) == 1  # a POST with no name is never re-sent


# --- the seed's five examples, awaited ----------------------------------------------------------

SEED_SUB = "abcde1fghij2klmno3pqrst4uvwxy5z"
SEED_PATH = f"/v1_1/provisioning/accounts/%3Cid%3E/sub_accounts/{SEED_SUB}/access_keys"
SEED_AUTH = aiohttp.encode_basic_auth(
    "CLOUDINARY_PROVISIONING_API_KEY", "CLOUDINARY_PROVISIONING_API_SECRET"
)


def seed_client(server: RecordingServer) -> CldProvisioning:
    return CldProvisioning(
        account_id="<id>",
        security=cldprov_async.Security(
            provisioning_api_key="CLOUDINARY_PROVISIONING_API_KEY",
            provisioning_api_secret="CLOUDINARY_PROVISIONING_API_SECRET",
        ),
        server_url=server.url,
    )


async def test_seed_list(recording_server: RecordingServer) -> None:
    recording_server.respond(json=ACCESS_KEYS)
    async with seed_client(recording_server) as cld_provisioning:
        res = await cld_provisioning.access_keys.list(
            request={
                "sub_account_id": "abcde1fghij2klmno3pqrst4uvwxy5z",
                "sort_by": cldprov_async.SortBy.CREATED_AT,
                "sort_order": cldprov_async.SortOrder.ASC,
            }
        )
    [req] = recording_server.requests
    assert (req.method, req.raw_path) == ("GET", SEED_PATH)
    assert dict(req.query) == {"sort_by": "created_at", "sort_order": "asc"}
    assert req.headers["Authorization"] == SEED_AUTH
    assert isinstance(res, AccessKeysResponse)
    assert res.total == 2
    assert [k.name for k in res.access_keys] == ["main_key", "secondary_key"]
    first, second = res.access_keys
    assert isinstance(first, AccessKey)
    assert first.created_at == datetime(2022, 3, 15, 11, 44, 48, tzinfo=UTC)
    assert first.updated_at == datetime(2023, 8, 10, 9, 23, 45, tzinfo=UTC)
    assert first.created_at.tzinfo is not None
    assert (first.enabled, second.enabled) == (True, False)
    assert second.api_secret == "scQscQscQscQscQscQscQscQscQ"
    assert first.dedicated_for == ()


async def test_seed_generate(recording_server: RecordingServer) -> None:
    recording_server.respond(json=MAIN_KEY)
    async with seed_client(recording_server) as cld_provisioning:
        res = await cld_provisioning.access_keys.generate(
            sub_account_id="abcde1fghij2klmno3pqrst4uvwxy5z",
            access_key_request={
                "name": "main_key",
                "enabled": True,
            },
        )
    [req] = recording_server.requests
    assert (req.method, req.raw_path) == ("POST", SEED_PATH)
    assert req.json() == {"name": "main_key", "enabled": True}
    assert isinstance(res, AccessKey)
    assert (res.name, res.api_key, res.enabled) == ("main_key", "814814814814814", True)
    assert res.api_secret == "QcsQcsQcsQcsQcsQcsQcsQcsQcs"
    assert res.created_at == datetime(2022, 3, 15, 11, 44, 48, tzinfo=UTC)


async def test_seed_delete_by_name(recording_server: RecordingServer) -> None:
    recording_server.respond(json={"message": "ok"})
    async with seed_client(recording_server) as cld_provisioning:
        res = await cld_provisioning.access_keys.delete_by_name(
            sub_account_id="abcde1fghij2klmno3pqrst4uvwxy5z", name="main_key"
        )
    [req] = recording_server.requests
    assert (req.method, req.raw_path, dict(req.query)) == (
        "DELETE",
        SEED_PATH,
        {"name": "main_key"},
    )
    assert res == SuccessResponse(message="ok")


async def test_seed_update_parses_dedicated_for_list_quirk(
    recording_server: RecordingServer,
) -> None:
    # The live API answers a dedicated key with a list the spec does not document.
    recording_server.respond(json={**MAIN_KEY, "dedicated_for": ["webhooks"]})
    async with seed_client(recording_server) as cld_provisioning:
        res = await cld_provisioning.access_keys.update(
            sub_account_id="abcde1fghij2klmno3pqrst4uvwxy5z",
            key="814814814814814",
            access_key_update_request={
                "name": "main_key",
                "enabled": True,
                "dedicated_for": cldprov_async.DedicatedFor.WEBHOOKS,
            },
        )
    [req] = recording_server.requests
    assert (req.method, req.raw_path) == ("PUT", f"{SEED_PATH}/814814814814814")
    assert req.json() == {"name": "main_key", "enabled": True, "dedicated_for": "webhooks"}
    assert isinstance(res, AccessKey)
    assert res.dedicated_for == ("webhooks",)
    assert res.dedicated_for == (cldprov_async.DedicatedFor.WEBHOOKS,)
    assert res.updated_at == datetime(2023, 8, 10, 9, 23, 45, tzinfo=UTC)


async def test_seed_delete(recording_server: RecordingServer) -> None:
    recording_server.respond(json={"message": "ok"})
    async with seed_client(recording_server) as cld_provisioning:
        res = await cld_provisioning.access_keys.delete(
            sub_account_id="abcde1fghij2klmno3pqrst4uvwxy5z", key="814814814814814"
        )
    [req] = recording_server.requests
    assert (req.method, req.raw_path, req.body) == ("DELETE", f"{SEED_PATH}/814814814814814", b"")
    assert isinstance(res, SuccessResponse)
    assert res.message == "ok"


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2022-03-15T11:44:48Z", datetime(2022, 3, 15, 11, 44, 48, tzinfo=UTC)),
        ("2022-03-15T13:44:48+02:00", datetime(2022, 3, 15, 11, 44, 48, tzinfo=UTC)),
        ("2022-03-15T11:44:48", datetime(2022, 3, 15, 11, 44, 48, tzinfo=UTC)),
        ("2022-03-15T11:44:48.250Z", datetime(2022, 3, 15, 11, 44, 48, 250000, tzinfo=UTC)),
    ],
)
async def test_timestamps_are_aware(
    recording_server: RecordingServer, stamp: str, expected: datetime
) -> None:
    recording_server.respond(json={**MAIN_KEY, "created_at": stamp})
    async with client_for(recording_server) as client:
        key = await client.access_keys.generate(SUB, {"name": "k"})
    assert key.created_at.tzinfo is not None
    assert key.created_at == expected


# --- the same wire through aioresponses (no middleware runs under it) ---------------------------

BASE = "https://api.cloudinary.com"


async def test_request_as_built_under_aioresponses(cldprov_aioresponses: aioresponses) -> None:
    url = f"{BASE}{KEYS_PATH}"
    cldprov_aioresponses.post(url, payload=MAIN_KEY)
    cldprov_aioresponses.put(f"{BASE}{ONE_KEY_PATH}", payload=MAIN_KEY)
    async with CldProvisioning(ACCOUNT, Security(KEY, SECRET)) as client:
        for coro in (
            client.access_keys.generate(SUB, {"name": "k"}),
            client.access_keys.update(SUB, API_KEY, {"dedicated_for": "webhooks"}),
        ):
            # only the request matters here; see test_aioresponses_body_reaches_the_parser
            with contextlib.suppress(cldprov_async.APIError):
                await coro
    [post] = cldprov_aioresponses.requests[("POST", URL(url))]
    [put] = cldprov_aioresponses.requests[("PUT", URL(f"{BASE}{ONE_KEY_PATH}"))]
    assert post.kwargs["data"] == b'{"name": "k"}'
    assert put.kwargs["data"] == b'{"dedicated_for": "webhooks"}'
    for call in (post, put):
        headers = call.kwargs["headers"]
        assert headers["Authorization"] == AUTH
        assert headers["Content-Type"] == "application/json"
        assert headers["Accept"] == "application/json"
        assert call.kwargs["allow_redirects"] is False


@pytest.mark.parametrize("status", [200, 404])
async def test_aioresponses_body_reaches_the_parser(
    cldprov_aioresponses: aioresponses, status: int
) -> None:
    body = ACCESS_KEYS if status == 200 else {"error": {"message": "not found"}}
    cldprov_aioresponses.get(f"{BASE}{KEYS_PATH}", status=status, payload=body)
    async with CldProvisioning(ACCOUNT, Security(KEY, SECRET)) as client:
        if status == 200:
            res = await client.access_keys.list({"sub_account_id": SUB})
            assert res.total == 2
        else:
            with pytest.raises(cldprov_async.NotFoundError):
                await client.access_keys.list({"sub_account_id": SUB})

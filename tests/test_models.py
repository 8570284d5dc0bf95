"""Models: immutability, input validation before sending, response parsing, secrets kept out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import attrs
import pytest
from conftest import RecordingServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from samples import ACCOUNT, API_KEY, KEY, KEY_SECRET, MAIN_KEY, ONCE, SECRET, SUB

import cldprov_async
from cldprov_async import (
    AccessKey,
    AccessKeyRequest,
    AccessKeysAPI,
    AccessKeysResponse,
    AccessKeyUpdateRequest,
    APIError,
    CldProvisioning,
    CldProvisioningError,
    DedicatedFor,
    GetAccessKeysRequest,
    RateLimit,
    ResponseValidationError,
    RetryConfig,
    Security,
    SortBy,
    SortOrder,
    SuccessResponse,
)

NOW = datetime(2024, 1, 1, tzinfo=UTC)


def client_for(server: RecordingServer, **kwargs: Any) -> CldProvisioning:
    return CldProvisioning(ACCOUNT, Security(KEY, SECRET), server_url=server.url, **kwargs)


# --- frozen and slotted -------------------------------------------------------------------------

INSTANCES: list[object] = [
    AccessKey("n", "k", NOW, NOW, True, api_secret="s"),
    AccessKeysResponse((), 0),
    SuccessResponse("ok"),
    AccessKeyRequest(name="n"),
    AccessKeyUpdateRequest(enabled=True),
    GetAccessKeysRequest(sub_account_id="s"),
    Security("k", "s"),
    RetryConfig(),
    RateLimit(1, 1, NOW),
]


@pytest.mark.parametrize("instance", INSTANCES, ids=lambda i: type(i).__name__)
def test_models_are_frozen_and_slotted(instance: Any) -> None:
    cls = type(instance)
    assert "__slots__" in cls.__dict__
    assert not hasattr(instance, "__dict__")
    for f in attrs.fields(cls):
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            setattr(instance, f.name, None)
    with pytest.raises((AttributeError, attrs.exceptions.FrozenInstanceError)):
        instance.not_a_field = 1


def test_error_response_and_api_error_are_shared_between_modules() -> None:
    assert cldprov_async.models.ErrorResponse is cldprov_async.errors.ErrorResponse
    assert cldprov_async.models.APIError is cldprov_async.errors.APIError
    assert cldprov_async.ErrorResponse is cldprov_async.errors.ErrorResponse


# --- requests: model or mapping, enum member or string ------------------------------------------


async def _wire(server: RecordingServer, call: Callable[[AccessKeysAPI], Awaitable[object]]) -> Any:
    async with client_for(server) as client:
        await call(client.access_keys)
    req = server.requests[-1]
    return (req.method, req.raw_path, sorted(req.query.items()), req.body)


async def test_list_accepts_model_or_mapping_and_enum_or_string(
    recording_server: RecordingServer,
) -> None:
    recording_server.respond(json={"access_keys": [], "total": 0})
    model = GetAccessKeysRequest(
        sub_account_id=SUB, page_size=5, page=3, sort_by=SortBy.API_KEY, sort_order=SortOrder.DESC
    )
    mapping = {
        "sub_account_id": SUB,
        "page_size": 5,
        "page": 3,
        "sort_by": "api_key",
        "sort_order": "desc",
    }
    a = await _wire(recording_server, lambda api: api.list(model))
    b = await _wire(recording_server, lambda api: api.list(mapping))
    assert a == b
    assert a[2] == [
        ("page", "3"),
        ("page_size", "5"),
        ("sort_by", "api_key"),
        ("sort_order", "desc"),
    ]


@pytest.mark.parametrize("sort_by", list(SortBy))
@pytest.mark.parametrize("sort_order", list(SortOrder))
def test_enum_fields_coerce_strings_to_members(sort_by: SortBy, sort_order: SortOrder) -> None:
    req = GetAccessKeysRequest(
        sub_account_id="s", sort_by=sort_by.value, sort_order=sort_order.value
    )
    assert req.sort_by is sort_by
    assert req.sort_order is sort_order
    assert AccessKeyUpdateRequest(dedicated_for="webhooks").dedicated_for is DedicatedFor.WEBHOOKS


async def test_generate_accepts_model_or_mapping(recording_server: RecordingServer) -> None:
    recording_server.respond(json=MAIN_KEY)
    a = await _wire(
        recording_server, lambda api: api.generate(SUB, AccessKeyRequest(name="k", enabled=False))
    )
    b = await _wire(
        recording_server, lambda api: api.generate(SUB, {"name": "k", "enabled": False})
    )
    assert a == b
    assert a[3] == b'{"name": "k", "enabled": false}'


async def test_update_accepts_model_or_mapping_and_enum_or_string(
    recording_server: RecordingServer,
) -> None:
    recording_server.respond(json=MAIN_KEY)
    a = await _wire(
        recording_server,
        lambda api: api.update(
            SUB, API_KEY, AccessKeyUpdateRequest(dedicated_for=DedicatedFor.WEBHOOKS)
        ),
    )
    b = await _wire(
        recording_server, lambda api: api.update(SUB, API_KEY, {"dedicated_for": "webhooks"})
    )
    assert a == b
    assert a[3] == b'{"dedicated_for": "webhooks"}'


# --- validation before anything is sent ---------------------------------------------------------

Bad = Callable[[Any], Awaitable[object]]  # Any: the table passes wrong types on purpose
S = SUB
INVALID: list[tuple[str, Bad, type[Exception], str]] = [
    # list
    ("list-empty-sub", lambda a: a.list({"sub_account_id": ""}), ValueError, "sub_account_id"),
    ("list-int-sub", lambda a: a.list({"sub_account_id": 5}), TypeError, "sub_account_id"),
    ("list-no-sub", lambda a: a.list({}), TypeError, "sub_account_id"),
    ("list-page-0", lambda a: a.list({"sub_account_id": S, "page": 0}), ValueError, "page"),
    ("list-page-101", lambda a: a.list({"sub_account_id": S, "page": 101}), ValueError, "page"),
    ("list-page-str", lambda a: a.list({"sub_account_id": S, "page": "2"}), TypeError, "page"),
    ("list-page-bool", lambda a: a.list({"sub_account_id": S, "page": True}), TypeError, "page"),
    (
        "list-size-0",
        lambda a: a.list({"sub_account_id": S, "page_size": 0}),
        ValueError,
        "page_size",
    ),
    (
        "list-sort-by",
        lambda a: a.list({"sub_account_id": S, "sort_by": "size"}),
        ValueError,
        "sort_by",
    ),
    (
        "list-sort-by-int",
        lambda a: a.list({"sub_account_id": S, "sort_by": 1}),
        TypeError,
        "sort_by",
    ),
    (
        "list-sort-order",
        lambda a: a.list({"sub_account_id": S, "sort_order": "up"}),
        ValueError,
        "sort_order",
    ),
    (
        "list-sort-order-wrong-enum",
        lambda a: a.list({"sub_account_id": S, "sort_order": SortBy.NAME}),
        ValueError,
        "sort_order",
    ),
    ("list-unknown-key", lambda a: a.list({"sub_account_id": S, "pgae": 1}), TypeError, "pgae"),
    ("list-str-request", lambda a: a.list(S), TypeError, "request"),
    # generate
    ("gen-empty-sub", lambda a: a.generate("", {}), ValueError, "sub_account_id"),
    ("gen-none-sub", lambda a: a.generate(None, {}), TypeError, "sub_account_id"),
    ("gen-empty-name", lambda a: a.generate(S, {"name": ""}), ValueError, "name"),
    ("gen-int-name", lambda a: a.generate(S, {"name": 7}), TypeError, "name"),
    ("gen-enabled-yes", lambda a: a.generate(S, {"enabled": "yes"}), TypeError, "enabled"),
    ("gen-enabled-1", lambda a: a.generate(S, {"enabled": 1}), TypeError, "enabled"),
    ("gen-unknown-key", lambda a: a.generate(S, {"nmae": "k"}), TypeError, "nmae"),
    (
        "gen-dedicated-not-allowed",
        lambda a: a.generate(S, {"dedicated_for": "webhooks"}),
        TypeError,
        "dedicated_for",
    ),
    ("gen-str-body", lambda a: a.generate(S, "k"), TypeError, "access_key_request"),
    # update
    ("upd-empty-sub", lambda a: a.update("", API_KEY, {}), ValueError, "sub_account_id"),
    ("upd-empty-key", lambda a: a.update(S, "", {}), ValueError, "key"),
    ("upd-int-key", lambda a: a.update(S, 814, {}), TypeError, "key"),
    ("upd-enabled-yes", lambda a: a.update(S, API_KEY, {"enabled": "yes"}), TypeError, "enabled"),
    (
        "upd-dedicated",
        lambda a: a.update(S, API_KEY, {"dedicated_for": "email"}),
        ValueError,
        "dedicated_for",
    ),
    ("upd-empty-name", lambda a: a.update(S, API_KEY, {"name": ""}), ValueError, "name"),
    ("upd-unknown-key", lambda a: a.update(S, API_KEY, {"enable": True}), TypeError, "enable"),
    ("upd-none-body", lambda a: a.update(S, API_KEY, None), TypeError, "access_key_update_request"),
    # delete_by_name
    ("dbn-empty-name", lambda a: a.delete_by_name(S, ""), ValueError, "name"),
    ("dbn-none-name", lambda a: a.delete_by_name(S, None), TypeError, "name"),
    ("dbn-empty-sub", lambda a: a.delete_by_name("", "k"), ValueError, "sub_account_id"),
    # delete
    ("del-empty-sub", lambda a: a.delete("", API_KEY), ValueError, "sub_account_id"),
    ("del-bytes-sub", lambda a: a.delete(b"s", API_KEY), TypeError, "sub_account_id"),
    ("del-empty-key", lambda a: a.delete(S, ""), ValueError, "key"),
    # per-call options
    (
        "retries-dict",
        lambda a: a.delete(S, API_KEY, retries={"max_attempts": 1}),
        TypeError,
        "retries",
    ),
    ("retries-int", lambda a: a.list({"sub_account_id": S}, retries=1), TypeError, "retries"),
    ("timeout-str", lambda a: a.delete(S, API_KEY, timeout_ms="100"), TypeError, "timeout_ms"),
    ("timeout-bool", lambda a: a.generate(S, {}, timeout_ms=True), TypeError, "timeout_ms"),
    ("timeout-zero", lambda a: a.update(S, API_KEY, {}, timeout_ms=0), ValueError, "timeout_ms"),
    ("timeout-neg", lambda a: a.delete_by_name(S, "k", timeout_ms=-5), ValueError, "timeout_ms"),
    (
        "headers-list",
        lambda a: a.delete(S, API_KEY, http_headers=[("X-A", "b")]),
        TypeError,
        "http_headers",
    ),
    (
        "headers-int-value",
        lambda a: a.list({"sub_account_id": S}, http_headers={"X-A": 1}),
        TypeError,
        "http_headers",
    ),
    (
        "headers-injection",
        lambda a: a.list({"sub_account_id": S}, http_headers={"X-A": "v\r\nX-Evil: 1"}),
        ValueError,
        "http_headers",
    ),
]


@pytest.mark.parametrize(
    ("call", "exc", "param"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
async def test_invalid_input_is_refused_before_sending(
    recording_server: RecordingServer, call: Bad, exc: type[Exception], param: str
) -> None:
    async with client_for(recording_server) as client:
        with pytest.raises(exc) as info:
            await call(client.access_keys)
        assert param in str(info.value)
        assert not isinstance(info.value, CldProvisioningError)
    assert recording_server.requests == []


@pytest.mark.parametrize(
    ("account_id", "exc"), [("", ValueError), (5, TypeError), (b"acc", TypeError)]
)
async def test_invalid_account_id_is_refused(
    recording_server: RecordingServer, account_id: Any, exc: type[Exception]
) -> None:
    with pytest.raises(exc, match="account_id"):
        CldProvisioning(account_id, Security(KEY, SECRET), server_url=recording_server.url)
    assert recording_server.requests == []


@pytest.mark.parametrize(
    ("kwargs", "exc", "param"),
    [
        ({"provisioning_api_key": "", "provisioning_api_secret": "s"}, ValueError, "key"),
        ({"provisioning_api_key": "k", "provisioning_api_secret": 1}, TypeError, "secret"),
    ],
)
def test_invalid_security_is_refused(
    kwargs: dict[str, Any], exc: type[Exception], param: str
) -> None:
    with pytest.raises(exc, match=param):
        Security(**kwargs)


@pytest.mark.parametrize("falsy", ["", [], 0, ()])
async def test_generate_rejects_falsy_non_mapping_body(
    recording_server: RecordingServer, falsy: Any
) -> None:
    recording_server.respond(json=MAIN_KEY)
    async with client_for(recording_server) as client:
        with pytest.raises(TypeError, match="access_key_request"):
            await client.access_keys.generate(SUB, falsy)
    assert recording_server.requests == []


# --- response parsing ---------------------------------------------------------------------------


async def test_unknown_response_fields_are_ignored(recording_server: RecordingServer) -> None:
    extra_key = {**MAIN_KEY, "category": {"nested": [1, 2]}, "last_used_at": None, "x": 1}
    recording_server.respond(
        json={"access_keys": [extra_key], "total": 1, "next_cursor": "abc", "meta": {}}
    )
    async with client_for(recording_server) as client:
        res = await client.access_keys.list({"sub_account_id": SUB})
    assert res.total == 1
    [key] = res.access_keys
    assert (key.name, key.api_key, key.enabled) == ("main_key", API_KEY, True)
    assert not hasattr(key, "x")


async def test_optional_response_fields_may_be_absent(recording_server: RecordingServer) -> None:
    recording_server.enqueue(json={})
    recording_server.enqueue(json={"message": "deleted"})
    recording_server.enqueue(json={k: v for k, v in MAIN_KEY.items() if k != "api_secret"})
    async with client_for(recording_server) as client:
        listing = await client.access_keys.list({"sub_account_id": SUB})
        deleted = await client.access_keys.delete(SUB, API_KEY)
        key = await client.access_keys.update(SUB, API_KEY, {"name": "x"})
    assert listing == AccessKeysResponse(access_keys=(), total=None)
    assert deleted == SuccessResponse(message="deleted")
    assert key.api_secret is None
    assert key.dedicated_for == ()


@pytest.mark.parametrize(
    ("field", "value", "parsed"),
    [
        ("dedicated_for", ["webhooks"], ("webhooks",)),
        ("dedicated_for", "webhooks", ("webhooks",)),
        ("dedicated_for", [], ()),
        ("dedicated_for", ["webhooks", "something_new"], ("webhooks", "something_new")),
        ("enabled", "true", True),
        ("enabled", "false", False),
        ("api_secret", None, None),
    ],
)
async def test_tolerated_response_variants(
    recording_server: RecordingServer, field: str, value: Any, parsed: Any
) -> None:
    recording_server.respond(json={**MAIN_KEY, field: value})
    async with client_for(recording_server) as client:
        key = await client.access_keys.update(SUB, API_KEY, {})
    assert getattr(key, field) == parsed


async def test_response_larger_than_the_cap_is_refused(recording_server: RecordingServer) -> None:
    big = {"access_keys": [MAIN_KEY] * 50, "total": 50}
    recording_server.respond(json=big)
    async with client_for(recording_server, max_response_bytes=1000) as client:
        with pytest.raises(cldprov_async.ResponseTooLargeError) as info:
            await client.access_keys.list({"sub_account_id": SUB}, retries=ONCE)
    assert isinstance(info.value, APIError)
    assert len(recording_server.requests) == 1


def _key(**changes: Any) -> dict[str, Any]:
    return {**MAIN_KEY, **changes}


WRONG_SHAPES: list[tuple[str, str, Any]] = [
    ("list", "array", [MAIN_KEY]),
    ("list", "string", "ok"),
    ("list", "null", None),
    ("list", "keys-string", {"access_keys": "abc"}),
    ("list", "keys-object", {"access_keys": {"a": MAIN_KEY}}),
    ("list", "keys-null", {"access_keys": None}),
    ("list", "key-int-name", {"access_keys": [_key(name=1)]}),
    ("list", "key-not-object", {"access_keys": [1]}),
    ("list", "total-str", {"access_keys": [], "total": "2"}),
    ("list", "total-bool", {"access_keys": [], "total": True}),
    ("list", "total-float", {"access_keys": [], "total": 2.5}),
    ("key", "empty", {}),
    ("key", "missing-api-key", {k: v for k, v in MAIN_KEY.items() if k != "api_key"}),
    ("key", "enabled-yes", _key(enabled="yes")),
    ("key", "enabled-int", _key(enabled=1)),
    ("key", "created-garbage", _key(created_at="yesterday")),
    ("key", "created-int", _key(created_at=1_700_000_000)),
    ("key", "api-key-int", _key(api_key=814814814814814)),
    ("key", "secret-list", _key(api_secret=["x"])),
    ("key", "dedicated-object", _key(dedicated_for={"webhooks": True})),
    ("key", "dedicated-int-item", _key(dedicated_for=[1])),
    ("key", "array", [MAIN_KEY]),
    ("delete", "message-int", {"message": 5}),
    ("delete", "string", "ok"),
    ("delete", "array", []),
    ("delete", "number", 1),
]


async def _call_kind(api: AccessKeysAPI, kind: str) -> object:
    if kind == "list":
        return await api.list({"sub_account_id": SUB})
    if kind == "key":
        return await api.update(SUB, API_KEY, {"enabled": True})
    return await api.delete(SUB, API_KEY)


@pytest.mark.parametrize(
    ("kind", "body"),
    [(k, b) for k, _, b in WRONG_SHAPES],
    ids=[f"{k}-{i}" for k, i, _ in WRONG_SHAPES],
)
async def test_wrong_response_shape_is_response_validation_error(
    recording_server: RecordingServer, kind: str, body: Any
) -> None:
    recording_server.respond(json=body)
    async with client_for(recording_server) as client:
        with pytest.raises(ResponseValidationError) as info:
            await _call_kind(client.access_keys, kind)
    assert isinstance(info.value, APIError)
    assert isinstance(info.value, CldProvisioningError)
    assert len(recording_server.requests) == 1  # a bad 200 is not retried


async def test_validation_error_names_the_field_not_its_value(
    recording_server: RecordingServer,
) -> None:
    recording_server.respond(json=_key(enabled="VALUE-THAT-IS-WRONG", api_secret=["SEKRIT"]))
    async with client_for(recording_server) as client:
        with pytest.raises(ResponseValidationError) as info:
            await client.access_keys.update(SUB, API_KEY, {})
    text = str(info.value) + repr(info.value)
    assert "enabled" in text
    assert "api_secret" in text
    assert "VALUE-THAT-IS-WRONG" not in text
    assert "SEKRIT" not in text
    assert KEY_SECRET not in text


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["2022-03-15T11:44:48Z", "true", "false", "webhooks", ""])
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=16,
)
FIELD_NAMES = [*(f.name for f in attrs.fields(AccessKey)), "message", "total", "access_keys"]
KEYISH = st.dictionaries(st.sampled_from(FIELD_NAMES), JSON_VALUES, max_size=8)
BODIES = (
    JSON_VALUES
    | KEYISH
    | st.fixed_dictionaries(
        {"access_keys": st.lists(KEYISH, max_size=3)}, optional={"total": JSON_VALUES}
    )
    | st.just(MAIN_KEY).map(lambda k: {**k})
    | st.builds(lambda v: _key(enabled=v), JSON_VALUES)
)
EXPECTED = {
    "list": AccessKeysResponse,
    "key": AccessKey,
    "generate": AccessKey,
    "delete": SuccessResponse,
}


async def _run_all(server: RecordingServer) -> list[object]:
    outcomes: list[object] = []
    # no backoff sleeps: a garbled answer to the named generate is re-sent once to resolve it
    quick = RetryConfig(max_attempts=1, backoff_initial=0.0, backoff_max=0.0)
    async with client_for(server, retry_config=quick) as client:
        api = client.access_keys
        for kind, call in (
            ("list", lambda: api.list({"sub_account_id": SUB, "page": 1})),
            ("generate", lambda: api.generate(SUB, {"name": "k"})),
            ("key", lambda: api.update(SUB, API_KEY, {"enabled": False})),
            ("delete", lambda: api.delete_by_name(SUB, "k")),
            ("delete", lambda: api.delete(SUB, API_KEY)),
        ):
            try:
                result = await call()
            except CldProvisioningError as exc:  # anything else fails the test
                outcomes.append(exc)
            else:
                assert isinstance(result, EXPECTED[kind])
                outcomes.append(result)
    return outcomes


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=BODIES)
async def test_random_json_success_bodies_raise_only_library_errors(
    recording_server: RecordingServer, body: Any
) -> None:
    recording_server.respond(json=body)
    before = len(recording_server.requests)
    outcomes = await _run_all(recording_server)
    assert len(outcomes) == 5
    assert len(recording_server.requests) - before == 5


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=st.binary(max_size=64))
async def test_random_bytes_success_bodies_raise_only_library_errors(
    recording_server: RecordingServer, body: bytes
) -> None:
    recording_server.respond(body=body, headers={"Content-Type": "application/json"})
    await _run_all(recording_server)


async def test_deeply_nested_success_body_is_a_library_error(
    recording_server: RecordingServer,
) -> None:
    recording_server.respond(body="[" * 100_000, headers={"Content-Type": "application/json"})
    async with client_for(recording_server, retry_config=ONCE) as client:
        with pytest.raises(APIError):
            await client.access_keys.delete(SUB, API_KEY)


# --- secrets never shown ------------------------------------------------------------------------

AUTH_B64 = aiohttp.encode_basic_auth(KEY, SECRET).removeprefix("Basic ")  # the header's blob


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def assert_no_secret(*objects: object) -> None:
    for obj in objects:
        items: list[object] = list(_chain(obj)) if isinstance(obj, BaseException) else [obj]
        for item in items:
            for text in (repr(item), str(item)):
                for secret in (SECRET, KEY_SECRET, AUTH_B64):
                    assert secret not in text, f"{secret!r} shown by {type(item).__name__}"


async def test_access_key_secret_not_in_repr(recording_server: RecordingServer) -> None:
    recording_server.enqueue(json=MAIN_KEY)
    recording_server.enqueue(json={"access_keys": [MAIN_KEY], "total": 1})
    async with client_for(recording_server) as client:
        key = await client.access_keys.generate(SUB, {"name": "main_key"})
        listing = await client.access_keys.list({"sub_account_id": SUB})
        assert key.api_secret == KEY_SECRET  # it is there, just not shown
        assert listing.access_keys[0].api_secret == KEY_SECRET
        assert_no_secret(key, listing, client, Security(KEY, SECRET))
        assert "api_key='814814814814814'" in repr(key)


async def test_raised_errors_never_show_secrets(
    recording_server: RecordingServer, unused_tcp_port: int
) -> None:
    errors: list[BaseException] = []
    scripted: list[dict[str, Any]] = [
        {"status": 401, "json": {"error": {"message": "Invalid credentials"}}},
        {"status": 404, "json": {"error": {"message": "not found"}}},
        {"status": 500, "body": "<html>oops</html>"},
        {"status": 200, "json": _key(enabled="no")},
        {"status": 200, "json": _key(api_secret=[KEY_SECRET])},
        {"status": 200, "body": '{"api_secret": "' + KEY_SECRET},
        {"status": 302, "headers": {"Location": "http://127.0.0.1:1/"}},
        {"status": 200, "json": MAIN_KEY, "delay": 1.0},
    ]
    async with client_for(recording_server, retry_config=ONCE) as client:
        for script in scripted:
            recording_server.respond(**script)
            with pytest.raises(CldProvisioningError) as info:
                await client.access_keys.update(SUB, API_KEY, {"name": "n"}, timeout_ms=300)
            errors.append(info.value)
    refused = CldProvisioning(
        ACCOUNT, Security(KEY, SECRET), server_url=f"http://127.0.0.1:{unused_tcp_port}"
    )
    async with refused:
        with pytest.raises(CldProvisioningError) as info:
            await refused.access_keys.delete(SUB, API_KEY, retries=ONCE)
        errors.append(info.value)
    assert {type(e).__name__ for e in errors} >= {
        "AuthenticationError",
        "NotFoundError",
        "APIError",
        "ResponseValidationError",
        "RequestTimeoutError",
        "TransportError",
    }
    assert_no_secret(*errors)

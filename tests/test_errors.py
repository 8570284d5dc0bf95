"""Errors by status and body, redirects, transport failures, and client configuration."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from conftest import RecordingServer
from samples import ACCOUNT, API_KEY, AUTH, KEY, KEYS_PATH, ONCE, SECRET, SUB
from yarl import URL

import cldprov_async
from cldprov_async import (
    AccessKeysAPI,
    APIError,
    AuthenticationError,
    BadRequestError,
    CldProvisioning,
    CldProvisioningError,
    ConflictError,
    ErrorResponse,
    NotFoundError,
    OutcomeUnknownError,
    PermissionDeniedError,
    RateLimitedError,
    Security,
    TransportError,
)

ENV = "CLOUDINARY_ACCOUNT_URL"


def client_for(server: RecordingServer, **kwargs: Any) -> CldProvisioning:
    return CldProvisioning(ACCOUNT, Security(KEY, SECRET), server_url=server.url, **kwargs)


Op = Callable[[AccessKeysAPI], Awaitable[object]]
OPS: dict[str, tuple[Op, str, str]] = {
    "list": (lambda a: a.list({"sub_account_id": SUB}, retries=ONCE), "GET", KEYS_PATH),
    "generate": (lambda a: a.generate(SUB, {"name": "k"}, retries=ONCE), "POST", KEYS_PATH),
    "update": (
        lambda a: a.update(SUB, API_KEY, {"enabled": True}, retries=ONCE),
        "PUT",
        f"{KEYS_PATH}/{API_KEY}",
    ),
    "delete_by_name": (lambda a: a.delete_by_name(SUB, "k", retries=ONCE), "DELETE", KEYS_PATH),
    "delete": (lambda a: a.delete(SUB, API_KEY, retries=ONCE), "DELETE", f"{KEYS_PATH}/{API_KEY}"),
}
NOT_POST = [name for name, (_, method, _) in OPS.items() if method != "POST"]

DOCUMENTED: dict[int, type[ErrorResponse]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    420: RateLimitedError,
    429: RateLimitedError,
}


# --- documented statuses ------------------------------------------------------------------------


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("status", list(DOCUMENTED))
async def test_documented_status_maps_to_its_class(
    recording_server: RecordingServer, status: int, op: str
) -> None:
    raw = '{"error": {"message": "Something specific went wrong"}}'
    recording_server.respond(
        status,
        body=raw,
        headers={"Content-Type": "application/json", "X-Request-Id": "req-abc-123"},
    )
    call, method, path = OPS[op]
    async with client_for(recording_server) as client:
        with pytest.raises(CldProvisioningError) as info:
            await call(client.access_keys)
    exc = info.value
    assert type(exc) is DOCUMENTED[status]
    assert isinstance(exc, ErrorResponse)
    assert not isinstance(exc, APIError)
    assert exc.status_code == status
    assert exc.message == "Something specific went wrong"
    assert exc.request_id == "req-abc-123"
    assert exc.body == raw
    assert (exc.method, exc.path) == (method, path)
    assert "Something specific went wrong" in str(exc)
    assert len(recording_server.requests) == 1


def test_error_classes_are_shared_and_ordered() -> None:
    assert cldprov_async.models.ErrorResponse is cldprov_async.errors.ErrorResponse
    assert cldprov_async.models.APIError is cldprov_async.errors.APIError
    for cls in DOCUMENTED.values():
        assert issubclass(cls, ErrorResponse)
        assert issubclass(cls, CldProvisioningError)
    assert issubclass(cldprov_async.ResponseValidationError, APIError)
    assert issubclass(cldprov_async.RequestTimeoutError, TransportError)


async def test_error_body_category_and_code_are_kept(recording_server: RecordingServer) -> None:
    recording_server.respond(
        400, json={"error": {"message": "bad name", "category": "validation", "code": 1234}}
    )
    async with client_for(recording_server) as client:
        with pytest.raises(BadRequestError) as info:
            await client.access_keys.generate(SUB, {"name": "k"})
    assert (info.value.category, info.value.code) == ("validation", "1234")
    assert info.value.request_id is None


async def test_rate_limited_error_carries_the_reset(recording_server: RecordingServer) -> None:
    recording_server.respond(
        420,
        json={"error": {"message": "Rate Limit Exceeded"}},
        headers={
            "X-FeatureRateLimit-Limit": "500",
            "X-FeatureRateLimit-Remaining": "0",
            "X-FeatureRateLimit-Reset": "Tue, 18 Aug 2099 17:00:00 GMT",
        },
    )
    async with client_for(recording_server) as client:
        with pytest.raises(RateLimitedError) as info:
            await client.access_keys.list({"sub_account_id": SUB}, retries=ONCE)
    exc = info.value
    assert exc.status_code == 420
    assert exc.rate_limit is not None
    assert (exc.rate_limit.limit, exc.rate_limit.remaining) == (500, 0)
    assert exc.reset_at is not None
    assert (exc.reset_at.year, exc.reset_at.hour) == (2099, 17)
    assert len(recording_server.requests) == 1


# --- undocumented answers -----------------------------------------------------------------------

HTML = "<html><body><h1>502 Bad Gateway</h1></body></html>"
UNDOCUMENTED_BODIES = {
    "html": (HTML, "text/html"),
    "truncated-json": ('{"error": {"message": "cut', "application/json"),
    "error-is-string": ('{"error": "nope"}', "application/json"),
    "message-not-string": ('{"error": {"message": 5}}', "application/json"),
    "empty": ("", "application/json"),
}


@pytest.mark.parametrize("status", [400, 401, 404, 409])
@pytest.mark.parametrize("body_kind", [k for k in UNDOCUMENTED_BODIES if k != "html"])
async def test_documented_status_with_unreadable_json_keeps_its_class(
    recording_server: RecordingServer, status: int, body_kind: str
) -> None:
    # The API said 409 (or 404...) even if its body was cut: callers and the generate
    # resolution rely on the class, so the status decides it.
    text, ctype = UNDOCUMENTED_BODIES[body_kind]
    recording_server.respond(status, body=text, headers={"Content-Type": ctype})
    async with client_for(recording_server) as client:
        with pytest.raises(CldProvisioningError) as info:
            await client.access_keys.delete(SUB, API_KEY, retries=ONCE)
    assert type(info.value) is DOCUMENTED[status]
    assert info.value.status_code == status
    assert info.value.message.startswith("unreadable error body")
    assert info.value.body == text


@pytest.mark.parametrize("status", [400, 401, 404, 409, 429])
@pytest.mark.parametrize("ctype", ["text/html", "text/plain", ""])
async def test_documented_status_from_a_non_json_answer_is_api_error(
    recording_server: RecordingServer, status: int, ctype: str
) -> None:
    # An HTML page (or anything not JSON) came from a proxy or gateway, not the API.
    body = HTML if "html" in ctype else "upstream connect error"
    headers = {"Content-Type": ctype} if ctype else {}
    recording_server.respond(status, body=body, headers=headers)
    async with client_for(recording_server) as client:
        with pytest.raises(CldProvisioningError) as info:
            await client.access_keys.delete(SUB, API_KEY, retries=ONCE)
    assert type(info.value) is APIError
    assert info.value.status_code == status
    assert info.value.body == body


@pytest.mark.parametrize("op", NOT_POST)
@pytest.mark.parametrize("body_kind", ["html", "truncated-json", "empty"])
async def test_success_status_with_non_json_body_is_api_error(
    recording_server: RecordingServer, op: str, body_kind: str
) -> None:
    text, ctype = UNDOCUMENTED_BODIES[body_kind]
    recording_server.respond(200, body=text, headers={"Content-Type": ctype})
    async with client_for(recording_server) as client:
        with pytest.raises(CldProvisioningError) as info:
            await OPS[op][0](client.access_keys)
    assert type(info.value) is APIError
    assert info.value.status_code == 200


@pytest.mark.parametrize("body_kind", ["html", "truncated-json", "empty"])
async def test_generate_with_non_json_success_body_is_an_unknown_outcome(
    recording_server: RecordingServer, body_kind: str
) -> None:
    # A 2xx whose body cannot be read may or may not have created the key.
    text, ctype = UNDOCUMENTED_BODIES[body_kind]
    recording_server.respond(200, body=text, headers={"Content-Type": ctype})
    async with client_for(recording_server) as client:
        with pytest.raises(OutcomeUnknownError):
            await client.access_keys.generate(SUB, {}, retries=ONCE)
    assert len(recording_server.requests) == 1  # without a name it is never re-sent


@pytest.mark.parametrize("op", list(OPS))
async def test_418_is_api_error(recording_server: RecordingServer, op: str) -> None:
    recording_server.respond(418, json={"error": {"message": "I'm a teapot"}})
    async with client_for(recording_server) as client:
        with pytest.raises(CldProvisioningError) as info:
            await OPS[op][0](client.access_keys)
    assert type(info.value) is APIError
    assert info.value.status_code == 418
    assert info.value.message == "I'm a teapot"
    assert len(recording_server.requests) == 1


@pytest.mark.parametrize("op", NOT_POST)
@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_api_error(recording_server: RecordingServer, op: str, status: int) -> None:
    recording_server.respond(status, body=HTML, headers={"Content-Type": "text/html"})
    async with client_for(recording_server) as client:
        with pytest.raises(CldProvisioningError) as info:
            await OPS[op][0](client.access_keys)
    assert type(info.value) is APIError
    assert info.value.status_code == status
    assert info.value.body == HTML
    assert len(recording_server.requests) == 1  # retries=ONCE


async def test_generate_5xx_without_name_is_an_unknown_outcome(
    recording_server: RecordingServer,
) -> None:
    recording_server.respond(500, body=HTML)
    async with client_for(recording_server) as client:
        with pytest.raises(OutcomeUnknownError) as info:
            await client.access_keys.generate(SUB, {}, retries=ONCE)
    assert info.value.status_code == 500
    assert isinstance(info.value.__cause__, APIError)
    assert len(recording_server.requests) == 1


async def test_generate_5xx_with_name_and_one_attempt_sends_once(
    recording_server: RecordingServer,
) -> None:
    # The POST is not re-sent; one read looks for the key in case the 500 came after a commit.
    recording_server.respond(500, body=HTML)
    async with client_for(recording_server) as client:
        with pytest.raises(OutcomeUnknownError) as info:
            await client.access_keys.generate(SUB, {"name": "k"}, retries=ONCE)
    assert [r.method for r in recording_server.requests] == ["POST", "GET"]
    assert "listing the keys failed too (APIError)" in str(info.value)


async def test_deeply_nested_error_body_is_unreadable(recording_server: RecordingServer) -> None:
    # json.loads would raise RecursionError; the caller still gets the 404's class.
    recording_server.respond(404, body="[" * 100_000, headers={"Content-Type": "application/json"})
    async with client_for(recording_server) as client:
        with pytest.raises(NotFoundError) as info:
            await client.access_keys.delete(SUB, API_KEY, retries=ONCE)
    assert info.value.message.startswith("unreadable error body")


# --- redirects are not followed -----------------------------------------------------------------


@pytest.mark.parametrize("op", ["list", "generate", "delete"])
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirect_is_not_followed(
    recording_server_factory: Callable[[], Awaitable[RecordingServer]], status: int, op: str
) -> None:
    origin = await recording_server_factory()
    target = await recording_server_factory()
    target.respond(json={"message": "ok"})
    origin.respond(status, headers={"Location": f"{target.url}{OPS[op][2]}"})
    async with client_for(origin) as client:
        with pytest.raises(CldProvisioningError) as info:
            await OPS[op][0](client.access_keys)
    assert type(info.value) is APIError
    assert info.value.status_code == status
    assert len(origin.requests) == 1
    assert target.requests == []


# --- transport failures -------------------------------------------------------------------------


@pytest.mark.parametrize("op", list(OPS))
async def test_connection_refused_is_transport_error(unused_tcp_port: int, op: str) -> None:
    client = CldProvisioning(
        ACCOUNT, Security(KEY, SECRET), server_url=f"http://127.0.0.1:{unused_tcp_port}"
    )
    async with client:
        with pytest.raises(TransportError) as info:
            await OPS[op][0](client.access_keys)
    # the request provably never left, so even a POST is not an unknown outcome
    assert not isinstance(info.value, OutcomeUnknownError)
    assert not isinstance(info.value, cldprov_async.RequestTimeoutError)


# --- credentials from CLOUDINARY_ACCOUNT_URL ----------------------------------------------------


async def _sent_with(server: RecordingServer, **kwargs: Any) -> tuple[str, str]:
    """(raw path, Authorization) of one delete sent by a client built with kwargs."""
    server.respond(json={"message": "ok"})
    async with CldProvisioning(server_url=server.url, **kwargs) as client:
        await client.access_keys.delete(SUB, API_KEY)
    req = server.requests[-1]
    return req.raw_path, req.headers["Authorization"]


async def test_account_url_fallback_via_env_parameter(recording_server: RecordingServer) -> None:
    path, auth = await _sent_with(recording_server, env={ENV: "account://ENVKEY:ENVSECRET@envacc"})
    assert path == f"/v1_1/provisioning/accounts/envacc/sub_accounts/{SUB}/access_keys/{API_KEY}"
    assert auth == aiohttp.encode_basic_auth("ENVKEY", "ENVSECRET")


async def test_account_url_fallback_via_os_environ(
    recording_server: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, "account://OSKEY:OSSECRET@osacc")
    path, auth = await _sent_with(recording_server)
    assert path.startswith("/v1_1/provisioning/accounts/osacc/")
    assert auth == aiohttp.encode_basic_auth("OSKEY", "OSSECRET")


async def test_account_url_is_percent_decoded(recording_server: RecordingServer) -> None:
    path, auth = await _sent_with(recording_server, env={ENV: "account://k%40y:p%3As%2Fs@acc%20x"})
    assert path.startswith("/v1_1/provisioning/accounts/acc%20x/")
    assert auth == aiohttp.encode_basic_auth("k@y", "p:s/s")


async def test_explicit_account_id_wins_over_env(recording_server: RecordingServer) -> None:
    path, auth = await _sent_with(
        recording_server, account_id="explicit", env={ENV: "account://EK:ES@envacc"}
    )
    assert path.startswith("/v1_1/provisioning/accounts/explicit/")
    assert auth == aiohttp.encode_basic_auth("EK", "ES")


async def test_explicit_security_wins_over_env(recording_server: RecordingServer) -> None:
    path, auth = await _sent_with(
        recording_server, security=Security(KEY, SECRET), env={ENV: "account://EK:ES@envacc"}
    )
    assert path.startswith("/v1_1/provisioning/accounts/envacc/")
    assert auth == AUTH


async def test_env_is_not_read_when_both_are_explicit(recording_server: RecordingServer) -> None:
    path, auth = await _sent_with(
        recording_server,
        account_id=ACCOUNT,
        security=Security(KEY, SECRET),
        env={ENV: "not a url at all"},
    )
    assert path.startswith(f"/v1_1/provisioning/accounts/{ACCOUNT}/")
    assert auth == AUTH


async def test_env_parameter_replaces_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "account://OSKEY:OSSECRET@osacc")
    with pytest.raises(ValueError, match=ENV):
        CldProvisioning(env={})


@pytest.mark.parametrize(
    "value",
    [
        "account://KEY:Sup3rSecretValue",
        "account://KEY:Sup3rSecretValue@",
        "account://KEY:Sup3rSecretValue@/",
        "https://KEY:Sup3rSecretValue@acc",
        "KEY:Sup3rSecretValue@acc",
        "account://:Sup3rSecretValue@acc",
        "account://KEYSup3rSecretValue@acc",
        "account:/KEY:Sup3rSecretValue@acc",
    ],
)
def test_malformed_account_url_never_shows_the_secret(value: str) -> None:
    with pytest.raises(ValueError) as info:
        CldProvisioning(env={ENV: value})
    assert ENV in str(info.value)
    assert "Sup3rSecretValue" not in str(info.value)
    assert "Sup3rSecretValue" not in repr(info.value)
    assert info.value.__cause__ is None or "Sup3rSecretValue" not in str(info.value.__cause__)


@pytest.mark.parametrize(
    ("kwargs", "missing"),
    [
        ({}, "account_id"),
        ({"account_id": ACCOUNT}, "security"),
        ({"security": Security(KEY, SECRET)}, "account_id"),
    ],
)
def test_missing_credentials_name_the_variable(kwargs: dict[str, Any], missing: str) -> None:
    with pytest.raises(ValueError) as info:
        CldProvisioning(env={ENV: ""}, **kwargs)
    assert ENV in str(info.value)
    assert missing in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "exc", "param"),
    [
        ({"timeout": 0}, ValueError, "timeout"),
        ({"timeout": -1.0}, ValueError, "timeout"),
        ({"timeout": True}, ValueError, "timeout"),
        ({"retry_config": {"max_attempts": 1}}, TypeError, "retry_config"),
        ({"session": "session"}, TypeError, "session"),
        ({"max_response_bytes": 0}, ValueError, "max_response_bytes"),
        ({"max_connections": True}, ValueError, "max_connections"),
        ({"security": ("k", "s")}, TypeError, "security"),
        ({"server_url": 8080}, TypeError, "server_url"),
    ],
)
def test_invalid_client_settings_are_refused(
    kwargs: dict[str, Any], exc: type[Exception], param: str
) -> None:
    settings: dict[str, Any] = {"account_id": ACCOUNT, "security": Security(KEY, SECRET)}
    with pytest.raises(exc, match=param):
        CldProvisioning(**{**settings, **kwargs})


# --- where requests go ----------------------------------------------------------------------------


@pytest.mark.parametrize("region", ["api", "api-eu", "api-ap"])
async def test_region_builds_the_cloudinary_host(region: str) -> None:
    async with CldProvisioning(ACCOUNT, Security(KEY, SECRET), region=region) as client:
        assert client.server_url == URL(f"https://{region}.cloudinary.com")


async def test_default_region_is_api() -> None:
    async with CldProvisioning(ACCOUNT, Security(KEY, SECRET)) as client:
        assert client.server_url == URL("https://api.cloudinary.com")


@pytest.mark.parametrize("region", ["eu", "api-us", "", "API", "api.eu", "evil.com/x"])
def test_unknown_region_is_refused(region: str) -> None:
    with pytest.raises(ValueError, match="region"):
        CldProvisioning(ACCOUNT, Security(KEY, SECRET), region=region)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "http://127.0.0.2",
        "http://localhost:9000",
        "http://LOCALHOST:9000",
        "http://[::1]:8080",
        "https://example.com",
        "https://10.1.2.3:8443",
    ],
)
async def test_allowed_server_urls(url: str) -> None:
    async with CldProvisioning(ACCOUNT, Security(KEY, SECRET), server_url=url) as client:
        assert client.server_url == URL(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com",
        "http://10.0.0.1:8080",
        "http://0.0.0.0:8080",
        "http://192.168.1.1",
        "http://localhost.example.com",
        "http://127.0.0.1.nip.io",
        "http://[::2]:80",
        "ftp://127.0.0.1",
        "127.0.0.1:8080",
        "//example.com",
        "https://user:pw@example.com",
        "https://example.com/?q=1",
    ],
)
def test_refused_server_urls(url: str) -> None:
    with pytest.raises(ValueError, match="server_url"):
        CldProvisioning(ACCOUNT, Security(KEY, SECRET), server_url=url)


async def test_server_url_path_prefix_is_honoured(recording_server: RecordingServer) -> None:
    recording_server.respond(json={"message": "ok"})
    server_url = f"{recording_server.url}/prefix"
    async with CldProvisioning(ACCOUNT, Security(KEY, SECRET), server_url=server_url) as client:
        await client.access_keys.delete(SUB, API_KEY)
    assert recording_server.requests[0].raw_path.startswith("/prefix/v1_1/")


# --- sessions: borrowed stays open, owned is closed ---------------------------------------------


async def test_borrowed_session_is_used_and_left_open(recording_server: RecordingServer) -> None:
    recording_server.respond(json={"message": "ok"})
    async with aiohttp.ClientSession(headers={"X-From-Borrowed": "yes"}) as borrowed:
        client = client_for(recording_server, session=borrowed)
        await client.access_keys.delete(SUB, API_KEY)
        transport = recording_server.requests[0].transport
        await client.close()
        await asyncio.sleep(0.05)
        assert not borrowed.closed
        assert transport is not None and not transport.is_closing()  # its pool is untouched
        async with borrowed.get(f"{recording_server.url}/after") as resp:
            assert resp.status == 200
        with pytest.raises(RuntimeError, match="closed"):
            await client.access_keys.delete(SUB, API_KEY)
    first, after = recording_server.requests
    assert first.headers["X-From-Borrowed"] == "yes"
    assert first.headers["Authorization"] == AUTH
    assert after.raw_path == "/after"


async def test_borrowed_session_settings_do_not_change_our_errors(
    recording_server: RecordingServer,
) -> None:
    recording_server.respond(404, json={"error": {"message": "not found"}})
    async with aiohttp.ClientSession(raise_for_status=True) as borrowed:
        async with client_for(recording_server, session=borrowed) as client:
            with pytest.raises(NotFoundError):
                await client.access_keys.delete(SUB, API_KEY)


async def test_owned_session_is_closed(recording_server: RecordingServer) -> None:
    recording_server.respond(json={"message": "ok"})
    client = client_for(recording_server)
    await client.access_keys.delete(SUB, API_KEY)
    transport = recording_server.requests[0].transport
    assert transport is not None and not transport.is_closing()  # kept alive until close()
    await client.close()
    for _ in range(50):
        if transport.is_closing():
            break
        await asyncio.sleep(0.01)
    assert transport.is_closing()
    with pytest.raises(RuntimeError, match="closed"):
        await client.access_keys.delete(SUB, API_KEY)
    await client.close()  # closing twice is harmless
    assert len(recording_server.requests) == 1

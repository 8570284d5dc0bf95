"""A fake Cloudinary Provisioning API (access keys only) for tests and benchmarks.

It is a real HTTP server on 127.0.0.1 (aiohttp.web), so a client under test goes through its whole
stack (connection pool, middlewares, retries, parsing). It mimics the live API's quirks: HTTP Basic
auth, ``{"error": {"message": ...}}`` bodies, 420/429 rate limiting in fixed wall-clock windows with
``X-FeatureRateLimit-*`` headers, ``dedicated_for`` returned as a list, booleans accepted as the
strings ``"true"``/``"false"``. It can inject faults, at random (seeded) or scripted, and it keeps a
journal of what it received so tests can assert on the server side.

Each request goes through, in this order:

1. auth: a wrong or missing ``Authorization`` gets 401 and consumes no rate-limit budget;
2. rate limit: a rejected request (420 or 429) touches no state and consumes no budget; an
   accepted one consumes budget whatever its outcome;
3. faults: only requests the rate limiter accepted can be faulted;
4. the route: 404 (account, sub-account, key), 400 (validation), 409 (duplicate name), 200.

Choices where the spec says nothing:

- Each sub-account starts with ``keys_per_sub_account`` enabled keys named ``key-1``, ``key-2``...
- ``generate`` without a name (or with ``""``) makes a key named ``""``; unnamed keys never conflict
  and cannot be deleted by name (``delete_by_name`` with an empty ``name`` is a 400).
- ``list``: sorting by ``created_at`` uses creation order (finer than the 1-second timestamps); ties
  on other fields keep creation order. Paging applies only when ``page`` or ``page_size`` is given;
  ``page`` defaults to 1 and ``page_size`` to :data:`DEFAULT_PAGE_SIZE`.
- JSON ``null`` for a field is a 400 (wrong type), like any other wrong type.
- Faults: ``"500"`` is a JSON error; ``"502"``/``"503"``/``"504"`` are HTML pages, as a proxy
  sends; ``"html"`` is a 500 with an HTML page (an app-server crash page where JSON is expected);
  none of them touches state. ``"drop_before"`` closes the connection without processing;
  ``"drop_after"`` commits the change, then closes it; neither sends a response (an aiohttp client
  raises ``ServerDisconnectedError``, but first resends GET/PUT/DELETE once by itself).
  ``"truncated"`` commits and sends the real response with its JSON body cut in half (valid HTTP,
  invalid JSON). ``"delay"`` sleeps ``Faults.delay`` (0.05 s without a policy), then answers.
- Every response carries the rate-limit headers when a policy is set, 401s and faults included.
- Random faults are reproducible for a given ``seed``: the n-th request of a route to a
  sub-account meets the same fault in every run, however concurrent requests interleave.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import json
import math
import random
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, Final, Literal, Self, get_args

import attrs
from aiohttp import web

if TYPE_CHECKING:
    from cldprov_async import CldProvisioning

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "FAULT_KINDS",
    "ROUTES",
    "FakeKey",
    "FakeProvisioningServer",
    "FaultKind",
    "Faults",
    "JournalEntry",
    "RateLimit",
    "Route",
    "ServerStats",
    "main",
]

FaultKind = Literal[
    "500", "502", "503", "504", "drop_before", "drop_after", "html", "truncated", "delay"
]
Route = Literal["list", "generate", "update", "delete", "delete_by_name"]

FAULT_KINDS: Final[tuple[FaultKind, ...]] = get_args(FaultKind)
ROUTES: Final[tuple[Route, ...]] = get_args(Route)
DEFAULT_PAGE_SIZE: Final = 10
"""``page_size`` used when only ``page`` is given."""

_JSON: Final = "application/json"
_HTML: Final = "text/html"
_LIMIT_H: Final = "X-FeatureRateLimit-Limit"
_REMAINING_H: Final = "X-FeatureRateLimit-Remaining"
_RESET_H: Final = "X-FeatureRateLimit-Reset"
_PREFIX: Final = ("", "v1_1", "provisioning", "accounts")


def _iso(ts: float) -> str:
    return _iso_second(int(ts))


@functools.lru_cache(maxsize=4)
def _iso_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))


# --- policies -------------------------------------------------------------------------------


def _check_probability(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be within [0, 1], got {value!r}")


def _to_kinds(kinds: Iterable[FaultKind]) -> tuple[FaultKind, ...]:
    result = tuple(kinds)
    for kind in result:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
    if not result:
        raise ValueError("kinds must not be empty")
    return result


def _to_routes(routes: Mapping[Route, float]) -> dict[Route, float]:
    for route, rate in routes.items():
        if route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; expected one of {ROUTES}")
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate for {route!r} must be within [0, 1], got {rate!r}")
    return dict(routes)


@attrs.frozen
class RateLimit:
    """Fixed windows aligned to the wall clock, like the live API's hourly windows.

    ``RateLimit(limit=N, window=3600)`` gives a reset up to an hour ahead; whole-second windows make
    the ``X-FeatureRateLimit-Reset`` date exact (sub-second ones round it up to the next second).
    """

    limit: int = attrs.field(validator=[attrs.validators.instance_of(int), attrs.validators.ge(0)])
    window: float = attrs.field(default=1.0, converter=float, validator=attrs.validators.gt(0.0))
    status: Literal[420, 429] = attrs.field(default=420, validator=attrs.validators.in_((420, 429)))
    retry_after: Literal["seconds", "date"] | None = attrs.field(
        default=None, validator=attrs.validators.in_((None, "seconds", "date"))
    )


@attrs.frozen
class Faults:
    """Random faults: each accepted request of a route fails with probability ``routes[route]``
    (else ``rate``), with a kind drawn uniformly from ``kinds``; ``delay`` is the "delay" sleep."""

    rate: float = attrs.field(default=0.0, validator=_check_probability)
    kinds: tuple[FaultKind, ...] = attrs.field(default=FAULT_KINDS, converter=_to_kinds)
    routes: Mapping[Route, float] = attrs.field(factory=dict, converter=_to_routes)
    delay: float = attrs.field(default=0.05, validator=attrs.validators.ge(0.0))


# --- snapshots ------------------------------------------------------------------------------


@attrs.frozen
class FakeKey:
    """A snapshot of one key as the server holds it (timestamps as sent on the wire)."""

    name: str
    api_key: str
    api_secret: str
    created_at: str
    updated_at: str
    enabled: bool
    dedicated_for: tuple[str, ...] = ()


@attrs.frozen
class JournalEntry:
    """One received request. ``status`` is None when the connection was dropped; ``body`` is the
    parsed JSON, else the raw text, else None (no body); ``route`` is None for unknown paths."""

    method: str
    path: str
    query: dict[str, str]
    headers: Mapping[str, str]
    body: Any
    status: int | None
    fault: FaultKind | None
    time: float
    route: Route | None


@attrs.frozen
class ServerStats:
    """Counters since start (or the last :meth:`FakeProvisioningServer.clear_journal`)."""

    received: int
    rate_limited: int
    dropped: int
    by_status: Mapping[int, int]
    faults: Mapping[str, int]


# --- internal state -------------------------------------------------------------------------


@attrs.define
class _Key:
    name: str
    api_key: str
    api_secret: str
    created_at: str
    updated_at: str
    enabled: bool
    seq: int


@attrs.define
class _SubAccount:
    keys: dict[str, _Key] = attrs.Factory(dict)  # by api_key, in creation order
    by_name: dict[str, _Key] = attrs.Factory(dict)  # named keys only
    webhooks_key: str | None = None  # api_key of the key dedicated for webhooks
    auto_names: int = 0

    def to_json(self, key: _Key) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": key.name,
            "api_key": key.api_key,
            "api_secret": key.api_secret,
            "created_at": key.created_at,
            "updated_at": key.updated_at,
            "enabled": key.enabled,
        }
        if self.webhooks_key == key.api_key:
            data["dedicated_for"] = ["webhooks"]  # a list, as the live API returns it
        return data

    def snapshot(self, key: _Key) -> FakeKey:
        dedicated = ("webhooks",) if self.webhooks_key == key.api_key else ()
        return FakeKey(
            key.name,
            key.api_key,
            key.api_secret,
            key.created_at,
            key.updated_at,
            key.enabled,
            dedicated,
        )

    def remove(self, key: _Key) -> None:
        del self.keys[key.api_key]
        if key.name:
            del self.by_name[key.name]
        if self.webhooks_key == key.api_key:
            self.webhooks_key = None


@attrs.define
class _Scripted:
    kind: FaultKind
    route: Route | None
    remaining: int


class _ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Limiter:
    """Window state for one policy; replaced as a whole when the policy changes."""

    def __init__(self, policy: RateLimit) -> None:
        self.policy = policy
        self._limit = str(policy.limit)
        self._start = math.nan
        self._count = 0
        self._reset_at = 0.0
        self._reset_date = ""

    def check(self, now: float, consume: bool) -> tuple[bool, dict[str, str]]:
        policy = self.policy
        start = math.floor(now / policy.window) * policy.window
        if start != self._start:
            self._start, self._count = start, 0
            self._reset_at = start + policy.window
            self._reset_date = formatdate(math.ceil(round(self._reset_at, 6)), usegmt=True)
        accepted = self._count < policy.limit
        if accepted and consume:
            self._count += 1
        headers = {
            _LIMIT_H: self._limit,
            _REMAINING_H: str(policy.limit - self._count),
            _RESET_H: self._reset_date,
        }
        if consume and not accepted and policy.retry_after is not None:
            if policy.retry_after == "seconds":
                headers["Retry-After"] = str(max(1, math.ceil(self._reset_at - now)))
            else:
                headers["Retry-After"] = self._reset_date
        return accepted, headers


def _html_page(status: int, reason: str, footer: str) -> bytes:
    return (
        f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>{footer}</center>\r\n"
        "</body>\r\n</html>\r\n"
    ).encode()


_HTML_FAULTS: Final[dict[str, tuple[int, bytes]]] = {
    "502": (502, _html_page(502, "Bad Gateway", "nginx")),
    "503": (503, _html_page(503, "Service Temporarily Unavailable", "nginx")),
    "504": (504, _html_page(504, "Gateway Time-out", "nginx")),
    "html": (500, _html_page(500, "Internal Server Error", "Application error")),
}


def _error_body(message: str) -> dict[str, Any]:
    return {"error": {"message": message}}


_ENCODER: Final = json.JSONEncoder(separators=(",", ":"))


def _dumps(payload: object) -> bytes:
    return _ENCODER.encode(payload).encode()


def _decode_body(raw: bytes) -> tuple[Any, bool]:
    """Return (value, is_json): parsed JSON, else the raw text, else None for no body."""
    if not raw:
        return None, False
    try:
        return json.loads(raw), True
    except ValueError:  # includes UnicodeDecodeError
        return raw.decode("utf-8", "replace"), False


def _object_body(body: Any, is_json: bool) -> dict[str, Any]:
    if not is_json:
        raise _ApiError(400, "Invalid JSON body")
    if not isinstance(body, dict):
        raise _ApiError(400, "Request body must be a JSON object")
    return body


def _opt_str(body: dict[str, Any], field: str) -> str | None:
    if field not in body:
        return None
    value: object = body[field]
    if not isinstance(value, str):
        raise _ApiError(400, f"Invalid value for {field}: expected a string")
    return value


def _opt_bool(body: dict[str, Any], field: str) -> bool | None:
    if field not in body:
        return None
    value: object = body[field]
    if isinstance(value, bool):
        return value
    if value == "true" or value == "false":
        return value == "true"
    raise _ApiError(400, f"Invalid value for {field}: expected a boolean")


def _int_param(query: Mapping[str, str], name: str, default: int, high: int | None) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    value = int(raw) if raw.isascii() and raw.isdigit() else 0
    if value < 1 or (high is not None and value > high):
        bound = "a positive integer" if high is None else f"an integer in 1..{high}"
        raise _ApiError(400, f"Invalid value for {name}: {raw!r} (expected {bound})")
    return value


_COLLECTION_ROUTES: Final[dict[str, Route]] = {
    "GET": "list",
    "POST": "generate",
    "DELETE": "delete_by_name",
}
_KEY_ROUTES: Final[dict[str, Route]] = {"PUT": "update", "DELETE": "delete"}
_SORT_KEYS: Final[dict[str, Callable[[_Key], Any]]] = {
    "api_key": lambda k: k.api_key,
    "created_at": lambda k: k.seq,
    "name": lambda k: k.name,
    "enabled": lambda k: k.enabled,
}


# --- the server -----------------------------------------------------------------------------


class FakeProvisioningServer:
    """The fake API; use ``async with``, :meth:`start`/:meth:`stop`, or :meth:`run_in_thread`.

    State may be read and arranged from any thread (a lock guards it). ``clock`` (wall-clock
    seconds) drives timestamps and rate-limit windows, so tests can move time without sleeping.
    """

    def __init__(
        self,
        *,
        account_id: str = "fake-account",
        api_key: str = "fake-key",
        api_secret: str = "fake-secret",
        sub_accounts: Iterable[str] = ("sub-1",),
        rate_limit: RateLimit | tuple[int, float] | None = None,
        faults: Faults | None = None,
        seed: int | None = None,
        keys_per_sub_account: int = 1,
        port: int = 0,
        keep_journal: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.account_id = account_id
        self.api_key = api_key
        self.api_secret = api_secret
        self.keys_per_sub_account = keys_per_sub_account
        self.journal: list[JournalEntry] = []
        """Received requests, in the order their handling finished."""
        self.keep_journal = keep_journal
        self._port = port
        self._clock = clock
        token = base64.b64encode(f"{api_key}:{api_secret}".encode()).decode()
        self._auth_header = f"Basic {token}"
        self._auth_token = token
        self._lock = threading.Lock()
        self._subs: dict[str, _SubAccount] = {}
        self._issued: set[str] = set()
        self._seq = 0
        self._keys_created = 0
        # Faults are drawn per (sub-account, route, n-th request), not from one stream, so a
        # seeded run repeats whatever order concurrent requests happen to arrive in.
        self._fault_seed = random.getrandbits(64) if seed is None else seed
        self._fault_draws: dict[tuple[str, Route], int] = {}
        self._key_rng = random.Random(None if seed is None else f"keys:{seed}")
        self._scripted: list[_Scripted] = []
        self._faults = faults
        self._limiter: _Limiter | None = None
        self.rate_limit = rate_limit
        self._received = self._rate_limited = self._dropped = 0
        self._by_status: dict[int, int] = {}
        self._fault_counts: dict[str, int] = {}
        self._runner: web.ServerRunner | None = None
        self._url: str | None = None
        for sub_account_id in sub_accounts:
            self.add_sub_account(sub_account_id)

    # --- configuration at runtime

    @property
    def rate_limit(self) -> RateLimit | None:
        limiter = self._limiter
        return None if limiter is None else limiter.policy

    @rate_limit.setter
    def rate_limit(self, policy: RateLimit | tuple[int, float] | None) -> None:
        """Replace the policy; the new one starts with a fresh window budget."""
        if isinstance(policy, tuple):
            policy = RateLimit(limit=policy[0], window=policy[1])
        self._limiter = None if policy is None else _Limiter(policy)

    @property
    def faults(self) -> Faults | None:
        return self._faults

    @faults.setter
    def faults(self, policy: Faults | None) -> None:
        self._faults = policy

    def inject(self, kind: FaultKind, *, route: Route | None = None, count: int = 1) -> None:
        """Queue ``kind`` for the next ``count`` accepted requests to ``route`` (any if None);
        scripted faults are taken before random ones."""
        _to_kinds([kind])
        if route is not None:
            _to_routes({route: 0.0})
        if count < 1:
            raise ValueError("count must be >= 1")
        with self._lock:
            self._scripted.append(_Scripted(kind, route, count))

    # --- arranging and reading state

    def add_sub_account(self, sub_account_id: str) -> None:
        """Add a sub-account holding ``keys_per_sub_account`` enabled keys."""
        with self._lock:
            if sub_account_id in self._subs:
                raise ValueError(f"sub-account {sub_account_id!r} already exists")
            self._subs[sub_account_id] = _SubAccount()
        for _ in range(self.keys_per_sub_account):
            self.add_key(sub_account_id)

    def add_key(
        self,
        sub_account_id: str,
        *,
        name: str | None = None,
        enabled: bool = True,
        dedicated: bool = False,
    ) -> FakeKey:
        """Arrange a key (not counted in :attr:`keys_created`); ``name=None`` picks ``key-N``."""
        with self._lock:
            sub = self._sub(sub_account_id)
            if name is None:
                while True:
                    sub.auto_names += 1
                    name = f"key-{sub.auto_names}"
                    if name not in sub.by_name:
                        break
            elif name and name in sub.by_name:
                raise ValueError(f"a key named {name!r} already exists in {sub_account_id!r}")
            key = self._new_key(sub, name, enabled)
            if dedicated:
                sub.webhooks_key = key.api_key
            return sub.snapshot(key)

    def keys(self, sub_account_id: str) -> list[FakeKey]:
        """Snapshots of the sub-account's keys, in creation order."""
        with self._lock:
            sub = self._sub(sub_account_id)
            return [sub.snapshot(key) for key in sub.keys.values()]

    @property
    def keys_created(self) -> int:
        """Keys created through POST, including those whose response was then dropped."""
        return self._keys_created

    @property
    def stats(self) -> ServerStats:
        with self._lock:
            return ServerStats(
                received=self._received,
                rate_limited=self._rate_limited,
                dropped=self._dropped,
                by_status=dict(self._by_status),
                faults=dict(self._fault_counts),
            )

    def clear_journal(self) -> None:
        """Forget received requests: empties :attr:`journal` and zeroes :attr:`stats`."""
        with self._lock:
            self.journal.clear()
            self._received = self._rate_limited = self._dropped = 0
            self._by_status.clear()
            self._fault_counts.clear()

    def _sub(self, sub_account_id: str) -> _SubAccount:
        try:
            return self._subs[sub_account_id]
        except KeyError:
            raise KeyError(f"unknown sub-account {sub_account_id!r}") from None

    def _new_key(self, sub: _SubAccount, name: str, enabled: bool) -> _Key:
        rng = self._key_rng
        api_key = str(rng.randrange(10**14, 10**15))
        while api_key in self._issued:
            api_key = str(rng.randrange(10**14, 10**15))
        self._issued.add(api_key)
        stamp = _iso(self._clock())
        self._seq += 1
        secret = base64.urlsafe_b64encode(rng.randbytes(21))[:27].decode()  # [A-Za-z0-9_-]
        key = _Key(name, api_key, secret, stamp, stamp, enabled, self._seq)
        sub.keys[api_key] = key
        if name:
            sub.by_name[name] = key
        return key

    # --- lifecycle

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, once started."""
        if self._url is None:
            raise RuntimeError("the server is not started")
        return self._url

    @property
    def port(self) -> int:
        return int(self.url.rpartition(":")[2])

    def client(self, **kwargs: Any) -> CldProvisioning:
        """A client of this package pointed at this server (``kwargs`` go to its constructor)."""
        # Imported here: the client module may import this one, and tests may not need a client.
        from cldprov_async import CldProvisioning, Security

        return CldProvisioning(
            account_id=self.account_id,
            security=Security(
                provisioning_api_key=self.api_key, provisioning_api_secret=self.api_secret
            ),
            server_url=self.url,
            **kwargs,
        )

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the server is already started")
        runner = web.ServerRunner(web.Server(self._handle, access_log=None), shutdown_timeout=2.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._url = f"http://127.0.0.1:{runner.addresses[0][1]}"

    async def stop(self) -> None:
        runner, self._runner, self._url = self._runner, None, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @contextlib.contextmanager
    def run_in_thread(self) -> Iterator[Self]:
        """Serve from a daemon thread with its own event loop, whatever loop (if any) the caller
        runs, for sync tests and fixtures."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="cldprov-fake-server", daemon=True)
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.start(), loop).result(timeout=30)
            try:
                yield self
            finally:
                asyncio.run_coroutine_threadsafe(self.stop(), loop).result(timeout=30)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
            loop.close()

    # --- request handling

    def _route(self, method: str, parts: list[str]) -> Route | None:
        if len(parts) < 8 or parts[5] != "sub_accounts" or parts[7] != "access_keys":
            return None
        if tuple(parts[:4]) != _PREFIX:
            return None
        if len(parts) == 8:
            return _COLLECTION_ROUTES.get(method)
        if len(parts) == 9 and parts[8]:
            return _KEY_ROUTES.get(method)
        return None

    def _next_fault(self, route: Route, sub_account_id: str) -> FaultKind | None:
        if self._scripted:
            with self._lock:
                for index, item in enumerate(self._scripted):
                    if item.route is None or item.route == route:
                        item.remaining -= 1
                        if not item.remaining:
                            del self._scripted[index]
                        return item.kind
        faults = self._faults
        if faults is None:
            return None
        rate = faults.routes.get(route, faults.rate)
        if rate <= 0.0:
            return None
        with self._lock:
            n = self._fault_draws.get((sub_account_id, route), 0)
            self._fault_draws[sub_account_id, route] = n + 1
        rng = random.Random(f"{self._fault_seed}:{sub_account_id}:{route}:{n}")
        if rng.random() >= rate:
            return None
        return faults.kinds[rng.randrange(len(faults.kinds))]

    def _authorized(self, header: str | None) -> bool:
        if header == self._auth_header:
            return True
        if header is None:
            return False
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "basic" and token.strip() == self._auth_token

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        now = self._clock()
        raw = await request.read() if request.body_exists else b""
        body, is_json = _decode_body(raw)
        query = dict(request.query)
        parts = request.path.split("/")
        route = self._route(request.method, parts)
        status: int | None = 500  # what aiohttp sends if _respond raises
        fault: FaultKind | None = None
        rate_limited = False
        try:
            response, fault, rate_limited = await self._respond(
                request, now, route, parts, query, body, is_json
            )
            status = None if response is None else response.status
            if response is None:
                request.protocol.force_close()  # closes the transport; nothing is sent
                return web.Response()  # its write fails on the closed transport and is ignored
            return response
        finally:
            entry = JournalEntry(
                request.method,
                request.path,
                query,
                request.headers,
                body,
                status,
                fault,
                now,
                route,
            )
            with self._lock:
                if self.keep_journal:
                    self.journal.append(entry)
                self._received += 1
                if status is None:
                    self._dropped += 1
                else:
                    self._by_status[status] = self._by_status.get(status, 0) + 1
                if fault is not None:
                    self._fault_counts[fault] = self._fault_counts.get(fault, 0) + 1
                if rate_limited:
                    self._rate_limited += 1

    async def _respond(
        self,
        request: web.BaseRequest,
        now: float,
        route: Route | None,
        parts: list[str],
        query: dict[str, str],
        body: Any,
        is_json: bool,
    ) -> tuple[web.Response | None, FaultKind | None, bool]:
        """Return (response or None to drop the connection, fault, rate_limited)."""
        limiter = self._limiter
        headers: dict[str, str] = {}
        if not self._authorized(request.headers.get("Authorization")):
            if limiter is not None:
                headers = limiter.check(now, consume=False)[1]
            return _json(401, _error_body("Invalid credentials"), headers), None, False
        if limiter is not None:
            accepted, headers = limiter.check(now, consume=True)
            if not accepted:
                message = "Rate Limit Exceeded"
                return _json(limiter.policy.status, _error_body(message), headers), None, True
        if route is None:
            message = f"No route for {request.method} {request.path}"
            return _json(404, _error_body(message), headers), None, False

        fault = self._next_fault(route, parts[6])
        if fault == "delay":
            faults = self._faults
            await asyncio.sleep(0.05 if faults is None else faults.delay)
        elif fault == "drop_before":
            return None, fault, False
        elif fault == "500":
            return _json(500, _error_body("Internal Server Error"), headers), fault, False
        elif fault in _HTML_FAULTS:
            status, page = _HTML_FAULTS[fault]
            headers["Content-Type"] = _HTML
            return web.Response(body=page, status=status, headers=headers), fault, False

        with self._lock:
            try:
                status, payload = self._dispatch(route, parts, query, body, is_json)
            except _ApiError as exc:
                status, payload = exc.status, _error_body(exc.message)
        if fault == "drop_after":
            return None, fault, False
        data = _dumps(payload)
        if fault == "truncated":
            data = data[: len(data) // 2]
        return _raw_json(status, data, headers), fault, False

    def _dispatch(
        self, route: Route, parts: list[str], query: dict[str, str], body: Any, is_json: bool
    ) -> tuple[int, Any]:
        """Apply one accepted request to the state (the caller holds the lock)."""
        account_id, sub_account_id = parts[4], parts[6]
        if account_id != self.account_id:
            raise _ApiError(404, f"Account {account_id} not found")
        sub = self._subs.get(sub_account_id)
        if sub is None:
            raise _ApiError(404, f"Product environment {sub_account_id} not found")
        if route == "list":
            return 200, self._list(sub, query)
        if route == "generate":
            return 200, self._generate(sub, _object_body(body, is_json))
        if route == "update":
            return 200, self._update(sub, parts[8], _object_body(body, is_json))
        if route == "delete":
            key = sub.keys.get(parts[8])
            if key is None:
                raise _ApiError(404, f"Access key {parts[8]} not found")
        else:
            name = query.get("name")
            if not name:
                raise _ApiError(400, "Missing required parameter: name")
            key = sub.by_name.get(name)
            if key is None:
                raise _ApiError(404, f"Access key named {name!r} not found")
        sub.remove(key)
        return 200, {"message": "ok"}

    def _list(self, sub: _SubAccount, query: dict[str, str]) -> dict[str, Any]:
        sort_by = query.get("sort_by", "created_at")
        sort_key = _SORT_KEYS.get(sort_by)
        if sort_key is None:
            raise _ApiError(400, f"Invalid value for sort_by: {sort_by!r}")
        sort_order = query.get("sort_order", "desc")
        if sort_order not in ("asc", "desc"):
            raise _ApiError(400, f"Invalid value for sort_order: {sort_order!r}")
        keys = sorted(sub.keys.values(), key=sort_key, reverse=sort_order == "desc")
        if "page" in query or "page_size" in query:
            page = _int_param(query, "page", 1, 100)
            size = _int_param(query, "page_size", DEFAULT_PAGE_SIZE, None)
            keys = keys[(page - 1) * size : page * size]
        return {"access_keys": [sub.to_json(key) for key in keys], "total": len(sub.keys)}

    def _generate(self, sub: _SubAccount, body: dict[str, Any]) -> dict[str, Any]:
        name = _opt_str(body, "name") or ""
        enabled = _opt_bool(body, "enabled")
        if name and name in sub.by_name:
            raise _ApiError(409, f"Access key with name {name!r} already exists")
        key = self._new_key(sub, name, True if enabled is None else enabled)
        self._keys_created += 1
        return sub.to_json(key)

    def _update(self, sub: _SubAccount, api_key: str, body: dict[str, Any]) -> dict[str, Any]:
        name = _opt_str(body, "name")
        enabled = _opt_bool(body, "enabled")
        dedicate = "dedicated_for" in body
        if dedicate and body["dedicated_for"] != "webhooks":
            raise _ApiError(400, "Invalid value for dedicated_for: expected 'webhooks'")
        key = sub.keys.get(api_key)
        if key is None:
            raise _ApiError(404, f"Access key {api_key} not found")
        if name is not None and name != key.name:
            if name and name in sub.by_name:
                raise _ApiError(409, f"Access key with name {name!r} already exists")
            if key.name:
                del sub.by_name[key.name]
            key.name = name
            if name:
                sub.by_name[name] = key
        if enabled is not None:
            key.enabled = enabled
        if dedicate:
            sub.webhooks_key = key.api_key
        key.updated_at = _iso(self._clock())
        return sub.to_json(key)


def _raw_json(status: int, data: bytes, headers: dict[str, str]) -> web.Response:
    headers["Content-Type"] = _JSON
    return web.Response(body=data, status=status, headers=headers)


def _json(status: int, payload: object, headers: dict[str, str]) -> web.Response:
    return _raw_json(status, _dumps(payload), headers)


# --- standalone -----------------------------------------------------------------------------


def _rate_limit_arg(text: str) -> tuple[int, float]:
    limit, _, window = text.partition("/")
    try:
        return int(limit), float(window or "1")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N/SECONDS, got {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cldprov_async.testing",
        description="Run the fake Provisioning API; prints CLDPROV_FAKE_URL=... once listening.",
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--account-id", default="fake-account")
    parser.add_argument("--api-key", default="fake-key")
    parser.add_argument("--api-secret", default="fake-secret")
    parser.add_argument("--sub-account", action="append", help="repeatable; default: sub-1")
    parser.add_argument("--keys-per-sub-account", type=int, default=1)
    parser.add_argument("--rate-limit", type=_rate_limit_arg, metavar="N/SECONDS")
    parser.add_argument("--rate-limit-status", type=int, choices=(420, 429), default=420)
    parser.add_argument("--retry-after", choices=("seconds", "date"))
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--fault-kind", action="append", choices=FAULT_KINDS, help="repeatable")
    parser.add_argument("--seed", type=int)
    return parser


async def _serve_until_signal(server: FakeProvisioningServer) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        print(f"CLDPROV_FAKE_URL={server.url}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT, then exit 0."""
    args = _parser().parse_args(argv)
    rate_limit = None
    if args.rate_limit is not None:
        limit, window = args.rate_limit
        rate_limit = RateLimit(
            limit=limit, window=window, status=args.rate_limit_status, retry_after=args.retry_after
        )
    faults = None
    if args.fault_rate:
        faults = Faults(rate=args.fault_rate, kinds=args.fault_kind or FAULT_KINDS)
    server = FakeProvisioningServer(
        account_id=args.account_id,
        api_key=args.api_key,
        api_secret=args.api_secret,
        sub_accounts=args.sub_account or ["sub-1"],
        rate_limit=rate_limit,
        faults=faults,
        seed=args.seed,
        keys_per_sub_account=args.keys_per_sub_account,
        port=args.port,
    )
    asyncio.run(_serve_until_signal(server))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

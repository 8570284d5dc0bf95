"""The HTTP side of the fake server: ``ProvisioningApp``, the aiohttp handler that takes each
request through auth, the rate limiter, the fault plan and then its route, journals it, and
writes the answer (JSON or error bodies, the HTML pages of HTML faults, dropped connections).

Imports ``_faults``, ``_journal``, ``_policy``, ``_routes``, ``_state`` and ``_types`` from the
package (nothing from ``cldprov_async``); nothing in the package below it imports it.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any, Final

import attrs
from aiohttp import web

from ._faults import FaultPlan
from ._journal import Journal, JournalEntry
from ._policy import RateLimiter
from ._routes import ApiError, dispatch, list_environments, match, ping, sub_account_of
from ._state import Accounts
from ._types import FaultKind, Route

_JSON: Final = "application/json"
#: The fake server's own control route (moving its clock): no API path starts like it.
CLOCK_PATH: Final = "/_fake/clock"
_HTML: Final = "text/html"


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


def _raw_json(status: int, data: bytes, headers: dict[str, str]) -> web.Response:
    headers["Content-Type"] = _JSON
    return web.Response(body=data, status=status, headers=headers)


def _json(status: int, payload: object, headers: dict[str, str]) -> web.Response:
    return _raw_json(status, _dumps(payload), headers)


@attrs.define
class PingSettings:
    """How the Admin API's ping treats keys: ``delay`` seconds (of the server's clock) before a
    new key is accepted, and the sub-account ids whose ping refuses every key."""

    delay: float = 0.0
    refused: frozenset[str] = frozenset()


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        login, sep, password = (
            base64.b64decode(token.strip(), validate=True).decode().partition(":")
        )
    except ValueError:
        return None
    return (login, password) if sep else None


def _decode_body(raw: bytes) -> tuple[Any, bool]:
    """Return (value, is_json): parsed JSON, else the raw text, else None for no body."""
    if not raw:
        return None, False
    try:
        return json.loads(raw), True
    except ValueError:  # includes UnicodeDecodeError
        return raw.decode("utf-8", "replace"), False


class ProvisioningApp:
    """Answers requests as the live API would, from the collaborators it is given."""

    def __init__(
        self,
        *,
        accounts: Accounts,
        journal: Journal,
        fault_plan: FaultPlan,
        rate_limiter: RateLimiter,
        api_key: str,
        api_secret: str,
        clock: Callable[[], float],
        ping: PingSettings | None = None,
    ) -> None:
        self.ping = PingSettings() if ping is None else ping
        self._accounts = accounts
        self._journal = journal
        self._fault_plan = fault_plan
        self._rate_limiter = rate_limiter
        self._clock = clock
        token = base64.b64encode(f"{api_key}:{api_secret}".encode()).decode()
        self._auth_header = f"Basic {token}"
        self._auth_token = token

    def _authorized(self, header: str | None) -> bool:
        if header == self._auth_header:
            return True
        if header is None:
            return False
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "basic" and token.strip() == self._auth_token

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.path == CLOCK_PATH:
            return await self._clock_control(request)
        now = self._clock()
        raw = await request.read() if request.body_exists else b""
        body, is_json = _decode_body(raw)
        query = dict(request.query)
        pairs = tuple(request.query.items())
        parts = request.path.split("/")
        route = match(request.method, parts)
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
                pairs,
            )
            self._journal.record(entry, rate_limited=rate_limited)

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
        if route == "ping":  # the Admin API: its own keys and limit, not the provisioning ones
            return await self._ping(request, parts)
        limiter = self._rate_limiter.current
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

        fault = self._fault_plan.next_fault(route, sub_account_of(parts))
        struck, early = await self._early_fault(fault, headers)
        if struck:
            return early, fault, False

        accounts = self._accounts
        with accounts.lock:
            try:
                if route == "list_product_environments":
                    status, payload = list_environments(accounts, parts, request.query)
                else:
                    status, payload = dispatch(accounts, route, parts, query, body, is_json)
            except ApiError as exc:
                status, payload = exc.status, _error_body(exc.message)
        return self._faulted(fault, status, payload, headers), fault, False

    async def _ping(
        self, request: web.BaseRequest, parts: list[str]
    ) -> tuple[web.Response | None, FaultKind | None, bool]:
        fault = self._fault_plan.next_fault("ping", parts[2])
        struck, early = await self._early_fault(fault, {})
        if struck:
            return early, fault, False
        credentials = _basic_credentials(request.headers.get("Authorization"))
        with self._accounts.lock:
            status, payload = ping(
                self._accounts,
                parts[2],
                credentials,
                delay=self.ping.delay,
                refused=self.ping.refused,
            )
        return self._faulted(fault, status, payload, {}), fault, False

    async def _clock_control(self, request: web.BaseRequest) -> web.Response:
        """``GET``: the server's now; ``POST {"advance": s}`` or ``{"set": epoch}`` moves a
        ``ManualClock`` (409 for any other clock)."""
        clock: Any = self._clock
        if request.method == "POST":
            body, is_json = _decode_body(await request.read())
            if not hasattr(clock, "advance"):
                return _json(409, _error_body("this server's clock cannot be moved"), {})
            try:
                if not is_json or not isinstance(body, dict) or len(body) != 1:
                    raise ValueError('expected {"advance": seconds} or {"set": epoch}')
                if "advance" in body:
                    clock.advance(float(body["advance"]))
                elif "set" in body:
                    clock.set(float(body["set"]))
                else:
                    raise ValueError('expected {"advance": seconds} or {"set": epoch}')
            except (ValueError, TypeError) as exc:
                return _json(400, _error_body(str(exc)), {})
        elif request.method != "GET":
            return _json(405, _error_body("GET or POST"), {})
        return _json(200, {"now": self._clock()}, {})

    def _faulted(
        self, fault: FaultKind | None, status: int, payload: Any, headers: dict[str, str]
    ) -> web.Response | None:
        """The answer after a fault that strikes once the route has run."""
        if fault == "drop_after":
            return None
        data = _dumps(payload)
        if fault == "truncated":
            data = data[: len(data) // 2]
        return _raw_json(status, data, headers)

    async def _early_fault(
        self, fault: FaultKind | None, headers: dict[str, str]
    ) -> tuple[bool, web.Response | None]:
        """(True, the answer) for a fault that strikes before the route runs (None: drop the
        connection), (False, None) to go on (after sleeping for a "delay")."""
        if fault == "delay":
            await asyncio.sleep(self._fault_plan.delay)
        elif fault == "drop_before":
            return True, None
        elif fault == "500":
            return True, _json(500, _error_body("Internal Server Error"), headers)
        elif fault in _HTML_FAULTS:
            status, page = _HTML_FAULTS[fault]
            headers["Content-Type"] = _HTML
            return True, web.Response(body=page, status=status, headers=headers)
        return False, None

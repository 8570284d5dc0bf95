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

from aiohttp import web

from ._faults import FaultPlan
from ._journal import Journal, JournalEntry
from ._policy import RateLimiter
from ._routes import ApiError, dispatch, list_environments, match, sub_account_of
from ._state import Accounts
from ._types import FaultKind, Route

_JSON: Final = "application/json"
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
    ) -> None:
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
        if fault == "delay":
            await asyncio.sleep(self._fault_plan.delay)
        elif fault == "drop_before":
            return None, fault, False
        elif fault == "500":
            return _json(500, _error_body("Internal Server Error"), headers), fault, False
        elif fault in _HTML_FAULTS:
            status, page = _HTML_FAULTS[fault]
            headers["Content-Type"] = _HTML
            return web.Response(body=page, status=status, headers=headers), fault, False

        accounts = self._accounts
        with accounts.lock:
            try:
                if route == "list_product_environments":
                    status, payload = list_environments(accounts, parts, request.query)
                else:
                    status, payload = dispatch(accounts, route, parts, query, body, is_json)
            except ApiError as exc:
                status, payload = exc.status, _error_body(exc.message)
        if fault == "drop_after":
            return None, fault, False
        data = _dumps(payload)
        if fault == "truncated":
            data = data[: len(data) // 2]
        return _raw_json(status, data, headers), fault, False

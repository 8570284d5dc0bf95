"""Every error this library raises on purpose.

Callers catch one base class and narrow from there::

    CldProvisioningError
    ├── ErrorResponse              documented status from the API: a JSON answer, even one
    │                              whose error body is cut short or malformed
    │   ├── BadRequestError          400
    │   ├── AuthenticationError      401
    │   ├── PermissionDeniedError    403
    │   ├── NotFoundError            404
    │   ├── ConflictError            409
    │   └── RateLimitedError         420 or 429, or refused locally: the reset is past the budget
    ├── APIError                   any other status, a redirect, or a non-JSON answer (a
    │   │                          proxy's HTML page), whatever its status
    │   ├── ResponseTooLargeError    the body exceeded ``max_response_bytes``
    │   └── ResponseValidationError  a success body of the wrong shape
    ├── TransportError             the exchange itself failed: connection refused or dropped
    │   ├── RequestTimeoutError      no answer within the attempt timeout
    │   └── OutcomeUnknownError      a ``generate`` may or may not have created a key
    ├── VerificationError          a rotation's ``verify`` rejected the new key
    ├── HandOffError               a rotation's hand-off (``deliver``, a deploy hook) failed
    └── RotationLockError          the rotation lock could not be taken (Redis unreachable)
        └── RotationLockedError      another run holds it: ``host`` and ``pid`` name it

Bad arguments from the caller are ``ValueError``/``TypeError`` raised before anything is
sent; they are not part of this tree.

No error carries credentials: messages hold the method, the path (ids only), the status and
the server's message, never headers or request bodies.

Imports nothing from this package at run time (the ``RateLimit`` snapshot, for types only).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    from ._snapshot import RateLimit

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "CldProvisioningError",
    "ConflictError",
    "ErrorResponse",
    "HandOffError",
    "NotFoundError",
    "OutcomeUnknownError",
    "PermissionDeniedError",
    "RateLimitedError",
    "RequestTimeoutError",
    "ResponseTooLargeError",
    "ResponseValidationError",
    "RotationLockError",
    "RotationLockedError",
    "TransportError",
    "VerificationError",
]

_MAX_MESSAGE = 300


class CldProvisioningError(Exception):
    """Base of every error the library raises about a request.

    ``str(error)`` is one line: the status, the message, the method and path, the request
    id. Errors are built by the client; catch them, there is no need to raise them.

    Args:
        message: What went wrong: the server's message, or the library's (at most 300
            characters are kept).
        status_code: The HTTP status of the answer, if one came.
        method: The request's HTTP method.
        path: The request's path (ids only, never credentials).
        request_id: The server's request id (``X-Request-Id`` and the like), if it sent one.
        body: The raw response text.
        rate_limit: The client's rate-limit snapshot when the error was raised.
        category: ``category`` beside the message in some error bodies.
        code: ``code`` beside the message in some error bodies.

    Attributes:
        message: What went wrong (the server's message, when it sent one).
        status_code: The HTTP status, or None when no answer came.
        method: The request's HTTP method, if known.
        path: The request's path, if known.
        request_id: The server's request id, for support requests.
        body: The raw response text, for debugging; never part of ``str(error)``.
        rate_limit: The rate-limit snapshot the client held when the error was raised.
        category: ``category`` beside the message in some error bodies.
        code: ``code`` beside the message in some error bodies.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        method: str | None = None,
        path: str | None = None,
        request_id: str | None = None,
        body: str = "",
        rate_limit: RateLimit | None = None,
        category: str | None = None,
        code: str | None = None,
    ) -> None:
        self.message = message[:_MAX_MESSAGE]
        self.status_code = status_code
        self.method = method
        self.path = path
        self.request_id = request_id
        self.body = body
        self.rate_limit = rate_limit
        self.category = category
        self.code = code
        super().__init__(self.message)

    def __str__(self) -> str:
        parts = []
        if self.status_code is not None:
            parts.append(str(self.status_code))
        parts.append(self.message)
        if self.method and self.path:
            parts.append(f"({self.method} {self.path})")
        if self.request_id:
            parts.append(f"[request id {self.request_id}]")
        return " ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class ErrorResponse(CldProvisioningError):
    """The server answered a documented error status with ``{"error": {"message": ...}}``."""


class BadRequestError(ErrorResponse):
    """400: the server rejected the request's content."""


class AuthenticationError(ErrorResponse):
    """401: the provisioning key or secret is wrong."""


class PermissionDeniedError(ErrorResponse):
    """403: the credentials may not do this."""


class NotFoundError(ErrorResponse):
    """404: unknown account, product environment or key."""


class ConflictError(ErrorResponse):
    """409: a key with that name already exists."""


class RateLimitedError(ErrorResponse):
    """420/429, or refused before sending because the window resets past the retry budget.

    ``reset_at`` (an aware datetime, or None when the server did not say) tells when
    sending again makes sense.

    Args:
        message: What went wrong.
        reset_at: When the server's window reopens (or its ``Retry-After`` ends).
        **kwargs: The other arguments of ``CldProvisioningError``.

    Attributes:
        reset_at: When the server's window reopens (or its Retry-After ends), if it said.
    """

    def __init__(self, message: str, *, reset_at: datetime | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.reset_at = reset_at


class APIError(CldProvisioningError):
    """An undocumented status, a redirect, or a body that is not the documented JSON."""


class ResponseTooLargeError(APIError):
    """The response body was larger than the client's ``max_response_bytes``."""


class ResponseValidationError(APIError):
    """A success response whose JSON does not have the documented shape."""


class TransportError(CldProvisioningError):
    """No usable HTTP answer: the connection failed, dropped or timed out."""


class RequestTimeoutError(TransportError):
    """The server did not answer within the attempt timeout."""


class OutcomeUnknownError(TransportError):
    """A ``generate`` was sent but its outcome is unknown and could not be resolved.

    Without a key name the client cannot look the key up, so it cannot tell whether the
    server created one. List the keys before trying again.
    """


class VerificationError(CldProvisioningError):
    """The caller's ``verify`` rejected a rotation's new key, so nothing was retired."""


class HandOffError(CldProvisioningError):
    """A rotation could not hand its new key off: ``deliver`` raised, or the deploy hook
    exited non-zero or ran past its timeout. The key stays pending and the older keys stay
    enabled; the next run hands the same key off again.

    Args:
        message: Why the hand-off failed (a hook's stderr tail included).
        exit_status: The hook's exit status, if a hook ran and exited.
        timed_out: Whether the hook ran past its timeout.
        stderr_tail: The last lines of the hook's stderr, secrets masked.

    Attributes:
        exit_status: the hook's exit status (negative: killed by that signal), or None.
        timed_out: the hook ran past its timeout and its process group was killed.
        stderr_tail: the last lines of the hook's stderr (secrets masked), also in the message.
    """

    def __init__(
        self,
        message: str,
        *,
        exit_status: int | None = None,
        timed_out: bool = False,
        stderr_tail: str = "",
    ) -> None:
        super().__init__(message)
        self.exit_status = exit_status
        self.timed_out = timed_out
        self.stderr_tail = stderr_tail


class RotationLockError(CldProvisioningError):
    """The rotation lock could not be taken or kept (its Redis did not answer)."""


class RotationLockedError(RotationLockError):
    """Another run holds the rotation lock of this account and server (the CLI exits 3).

    Args:
        message: The refusal, naming the account, the server and the holder.
        host: The holder's host name.
        pid: The holder's process id (None when its record could not be read).

    Attributes:
        host: the holder's host name.
        pid: the holder's process id.
    """

    def __init__(self, message: str, *, host: str, pid: int | None) -> None:
        super().__init__(message)
        self.host = host
        self.pid = pid


_BY_STATUS: dict[int, type[ErrorResponse]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    420: RateLimitedError,
    429: RateLimitedError,
}


_REQUEST_ID_HEADERS = ("X-Request-Id", "X-Cld-Request-Id", "X-Amzn-Trace-Id")


def from_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str,
    path: str,
    rate_limit: RateLimit | None,
) -> CldProvisioningError:
    """The error for a non-2xx answer.

    A documented status in a JSON answer is the API's verdict even when the body is cut short
    (a 409 must stay a conflict, or resolving a generate would fail), so the status picks the
    class; a non-JSON answer came from something in between and is an ``APIError``.
    """
    text = body.decode("utf-8", "replace")
    request_id = next((headers[h] for h in _REQUEST_ID_HEADERS if h in headers), None)
    common: dict[str, Any] = {
        "status_code": status,
        "method": method,
        "path": path,
        "request_id": request_id,
        "body": text,
        "rate_limit": rate_limit,
    }
    cls = _BY_STATUS.get(status)
    error = _error_body(text)
    if cls is not None and error is None and _is_json(headers):
        error = (f"unreadable error body: {_describe_body(text, headers)}", None, None)
    if cls is None or error is None:
        if 300 <= status < 400:
            return APIError("redirect not followed", **common)
        if error is not None:
            return APIError(error[0], **common)
        return APIError(_describe_body(text, headers), **common)
    message, category, code = error
    if cls is RateLimitedError:
        reset = rate_limit.reset_at if rate_limit is not None else None
        return RateLimitedError(message, reset_at=reset, category=category, code=code, **common)
    return cls(message, category=category, code=code, **common)


def _content_kind(headers: Mapping[str, str]) -> str:
    """The media type without parameters: "application/json" from "...; charset=utf-8"."""
    return headers.get("Content-Type", "").split(";")[0].strip().lower()


def _is_json(headers: Mapping[str, str]) -> bool:
    kind = _content_kind(headers)
    return kind == "application/json" or kind.endswith("+json")


def _describe_body(text: str, headers: Mapping[str, str]) -> str:
    """What the body was, for a message, without repeating it (it may be large or sensitive)."""
    kind = _content_kind(headers) or "no content type"
    if not text.strip():
        return "an empty body"
    if "html" in kind or text.lstrip().startswith("<"):
        return "an HTML page, not the API's JSON (a proxy or gateway answered?)"
    return f"a body that is not the API's JSON error ({kind})"


def _error_body(text: str) -> tuple[str, str | None, str | None] | None:
    """(message, category, code) from ``{"error": {"message": ...}}``, or None."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return None
    category, code = error.get("category"), error.get("code")
    return (
        error["message"],
        category if isinstance(category, str) else None,
        None if code is None else str(code),
    )

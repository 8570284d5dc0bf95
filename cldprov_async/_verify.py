"""``PingVerifier``: proof that a new key works, from Cloudinary's Admin API before hand-off.

``GET {server}/v1_1/{cloud_name}/ping`` with the new key's ``api_key:api_secret`` as Basic
auth answers ``{"status": "ok"}`` once the key is accepted. A freshly made key may not be
accepted everywhere at once, so a 401 (and a 5xx, a 420/429 or a dropped connection) is
retried with jittered exponential backoff until ``timeout`` seconds of the clock have passed;
any other answer fails at once. The Admin API has its own per-environment limit, apart from
the account's provisioning budget, so these requests go on their own small session: no
rate-limit gate, no provisioning middleware, no provisioning credentials.

Imports: the clock, models, errors.
"""

from __future__ import annotations

import json
import random

import aiohttp
from yarl import URL

from ._clock import SYSTEM_CLOCK, Clock
from .errors import VerificationError
from .models import AccessKey, ProductEnvironment, check_id

#: Seconds one ping attempt may take (real time).
ATTEMPT_TIMEOUT = 10.0
_RETRIED = frozenset({401, 420, 429, 500, 502, 503, 504})


class PingVerifier:
    """A ready ``verify=`` for rotations: the new key must pass the Admin API's ping.

    Made by ``client.ping_verifier()`` (closed with the client) or directly. A rotation
    passes it the environment (for its cloud name); called by hand, pass the environment
    or its cloud name.

    Args:
        server_url: the API's base URL (the Admin API shares the provisioning host).
        timeout: seconds (of ``clock``) to keep retrying a key that is not accepted yet.
        clock: the clock the backoff sleeps on and the timeout is measured by.
        backoff_initial: the first retry's upper bound, in seconds.
        backoff_max: the largest backoff between two attempts, in seconds.

    Attributes:
        server_url: the base URL the ping is sent to.
        timeout: seconds of ``clock`` a key may take to be accepted.
        clock: the clock of the backoff and the timeout.
        backoff_initial: the first retry's upper bound, in seconds.
        backoff_max: the largest backoff between two attempts, in seconds.

    Raises:
        ValueError: a timeout or backoff that is not a positive number.
    """

    def __init__(
        self,
        server_url: str | URL,
        *,
        timeout: float = 120.0,
        clock: Clock = SYSTEM_CLOCK,
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
    ) -> None:
        for name, value in (
            ("timeout", timeout),
            ("backoff_initial", backoff_initial),
            ("backoff_max", backoff_max),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        self.server_url = URL(str(server_url))
        self.timeout = float(timeout)
        self.clock = clock
        self.backoff_initial = float(backoff_initial)
        self.backoff_max = float(backoff_max)
        self._rng = random.Random()
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"PingVerifier({str(self.server_url)!r}, timeout={self.timeout})"

    async def __call__(self, key: AccessKey, environment: ProductEnvironment | str) -> None:
        """Return once the ping accepts ``key``; raise ``VerificationError`` otherwise.

        Args:
            key: the new key, with its secret.
            environment: its product environment, or the environment's cloud name.

        Raises:
            VerificationError: the key was refused (past the timeout), or has no secret.
        """
        cloud_name = environment if isinstance(environment, str) else environment.cloud_name
        check_id(cloud_name, "cloud_name")
        if not key.api_secret:
            raise VerificationError(f"key {key.api_key} has no secret to verify with")
        url = self.server_url.with_path(
            self.server_url.path.rstrip("/") + f"/v1_1/{cloud_name}/ping"
        )
        auth = aiohttp.encode_basic_auth(key.api_key, key.api_secret)
        started = self.clock()
        attempt = 0
        while True:
            status, message = await self._ping(url, auth)
            if status == 200 and message == "ok":
                return
            elapsed = self.clock() - started
            if status not in _RETRIED or elapsed >= self.timeout:
                waited = f" after {elapsed:.0f}s" if elapsed >= 1 else ""
                raise VerificationError(
                    f"the Admin API ping of {cloud_name} refused key {key.api_key}{waited}:"
                    f" {message}",
                    status_code=status or None,
                    method="GET",
                    path=url.path,
                )
            bound = min(self.backoff_max, self.backoff_initial * 2.0**attempt)
            attempt += 1
            pause = self._rng.uniform(bound / 2, bound)
            await self.clock.sleep(min(pause, max(0.0, self.timeout - elapsed)))

    async def _ping(self, url: URL, auth: str) -> tuple[int, str]:
        """(status, what it said); status 0 when no answer came."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=ATTEMPT_TIMEOUT)
            )
        try:
            async with self._session.get(
                url, headers={"Authorization": auth}, allow_redirects=False
            ) as resp:
                raw = await resp.content.read(64 * 1024)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            return 0, f"no answer ({type(exc).__name__})"
        return status, _said(status, raw)

    async def aclose(self) -> None:
        """Close the verifier's connections (a later call opens new ones)."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def _said(status: int, raw: bytes) -> str:
    try:
        data = json.loads(raw)
    except ValueError:
        return f"{status} (not JSON)"
    if status == 200:
        ok = isinstance(data, dict) and data.get("status") == "ok"
        return "ok" if ok else "200 without status ok"
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return f"{status} {message[:200]}" if isinstance(message, str) else str(status)

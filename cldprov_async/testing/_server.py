"""The public face of the fake server: ``FakeProvisioningServer``.

It wires the collaborators together (the account state, the journal, the fault plan, the rate
limiter and the aiohttp app), delegates its configuration and state methods to them, and owns the
lifecycle: listening on 127.0.0.1, in the caller's event loop or in a thread of its own.

Imports ``_app``, ``_faults``, ``_journal``, ``_policy``, ``_routes`` (the ping's rule),
``_state`` and ``_types`` from the package. Of the rest of ``cldprov_async``, only its
``_client`` and ``_config`` modules, and only under TYPE_CHECKING and inside ``client()``:
the fake server needs no client to run.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Self

from aiohttp import web

from ._app import PingSettings, ProvisioningApp
from ._faults import FaultPlan, Faults
from ._journal import Journal, JournalEntry, ServerStats
from ._policy import RateLimiter, RateLimitPolicy
from ._routes import ping
from ._state import Accounts, FakeKey
from ._types import FaultKind, Route

if TYPE_CHECKING:
    from .._client import CldProvisioning

_TIMEOUT = 30.0
"""Seconds ``FakeProvisioningServer.run_in_thread`` waits for its thread to start or stop."""


@contextlib.contextmanager
def _loop_thread(name: str) -> Iterator[asyncio.AbstractEventLoop]:
    """A new event loop running in a daemon thread; stopped and closed on exit."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name=name, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=_TIMEOUT)
        loop.close()


def _check_delay(seconds: float) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds >= 0:
        raise ValueError(f"ping_delay must be a number of seconds >= 0, not {seconds!r}")
    return float(seconds)


class FakeProvisioningServer:
    """The fake API; use ``async with``, ``start``/``stop``, or ``run_in_thread``.

    State may be read and arranged from any thread (a lock guards it). ``clock`` (wall-clock
    seconds) drives timestamps and rate-limit windows, so tests can move time without sleeping:
    give it a ``ManualClock`` (and the same one to the client) to live through months in
    seconds; ``POST /_fake/clock`` with ``{"advance": seconds}`` or ``{"set": epoch}`` moves a
    ``ManualClock`` from outside (``GET`` reads it).

    It also answers Cloudinary's Admin API ping, ``GET /v1_1/{cloud_name}/ping``, for each
    environment's cloud name: an enabled key of that environment with its secret as Basic auth
    gets ``{"status": "ok"}``, anything else 401. ``ping_delay`` (seconds of ``clock``) is how
    long a new key waits before it is accepted; the ping of an environment in
    ``ping_refused`` (sub-account ids) refuses every key. Pings pass no provisioning auth and
    no provisioning rate limit; faults apply to them as to any route (``"ping"``).

    Args:
        account_id: The account the API answers for; other accounts get 404.
        api_key: The provisioning key it accepts (HTTP Basic auth).
        api_secret: The provisioning secret it accepts.
        sub_accounts: The product environments it starts with.
        rate_limit: A ``RateLimitPolicy``, or ``(limit, window_seconds)``; None for no limit.
        faults: Random faults to inject; None for none (``inject`` still scripts them).
        seed: Makes random faults, keys and secrets repeat from run to run.
        keys_per_sub_account: Enabled keys (``key-1``, ``key-2``...) each new environment
            starts with.
        port: The port to listen on; 0 for a free one.
        keep_journal: Whether ``journal`` records each request (``stats`` counts either way).
        clock: The wall clock, in epoch seconds (a ``ManualClock`` moves at will).
        ping_delay: Seconds of ``clock`` a new key waits before the ping accepts it.
        ping_refused: Sub-account ids whose ping refuses every key.

    Attributes:
        api_key (str): The provisioning key it accepts.
        api_secret (str): The provisioning secret it accepts.
        keys_per_sub_account (int): Keys each environment added later starts with.
        clock (Callable[[], float]): The clock stamping keys and moving the rate-limit
            windows (give the client the same one).
    """

    def __init__(
        self,
        *,
        account_id: str = "fake-account",
        api_key: str = "fake-key",
        api_secret: str = "fake-secret",
        sub_accounts: Iterable[str] = ("sub-1",),
        rate_limit: RateLimitPolicy | tuple[int, float] | None = None,
        faults: Faults | None = None,
        seed: int | None = None,
        keys_per_sub_account: int = 1,
        port: int = 0,
        keep_journal: bool = True,
        clock: Callable[[], float] = time.time,
        ping_delay: float = 0.0,
        ping_refused: Iterable[str] = (),
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.keys_per_sub_account = keys_per_sub_account
        self._port = port
        self._accounts = Accounts(account_id=account_id, seed=seed, clock=clock)
        self._journal = Journal(keep=keep_journal)
        self._fault_plan = FaultPlan(faults, seed=seed)
        self._rate_limiter = RateLimiter(rate_limit)
        self.clock = clock
        self._ping = PingSettings(_check_delay(ping_delay), frozenset(ping_refused))
        self._app = ProvisioningApp(
            accounts=self._accounts,
            journal=self._journal,
            fault_plan=self._fault_plan,
            rate_limiter=self._rate_limiter,
            api_key=api_key,
            api_secret=api_secret,
            clock=clock,
            ping=self._ping,
        )
        self._runner: web.ServerRunner | None = None
        self._url: str | None = None
        for sub_account_id in sub_accounts:
            self.add_sub_account(sub_account_id)

    # --- configuration at runtime

    @property
    def account_id(self) -> str:
        """The account the API answers for (settable)."""
        return self._accounts.account_id

    @account_id.setter
    def account_id(self, account_id: str) -> None:
        self._accounts.account_id = account_id

    @property
    def rate_limit(self) -> RateLimitPolicy | None:
        """The rate-limit policy (settable: a new one starts with a fresh window budget)."""
        return self._rate_limiter.policy

    @rate_limit.setter
    def rate_limit(self, policy: RateLimitPolicy | tuple[int, float] | None) -> None:
        """Replace the policy; the new one starts with a fresh window budget."""
        self._rate_limiter.policy = policy

    @property
    def faults(self) -> Faults | None:
        """The random fault policy (settable at any time; None for none)."""
        return self._fault_plan.faults

    @faults.setter
    def faults(self, policy: Faults | None) -> None:
        self._fault_plan.faults = policy

    def inject(self, kind: FaultKind, *, route: Route | None = None, count: int = 1) -> None:
        """Queue ``kind`` for the next ``count`` accepted requests to ``route`` (any if None);
        scripted faults are taken before random ones.

        Args:
            kind: How the requests fail.
            route: Only requests of this route; None for any.
            count: How many requests to fault.

        Raises:
            ValueError: An unknown kind or route, or a count below 1.
        """
        self._fault_plan.inject(kind, route=route, count=count)

    @property
    def ping_delay(self) -> float:
        """Seconds (of the server's clock) before the ping accepts a new key."""
        return self._ping.delay

    @ping_delay.setter
    def ping_delay(self, seconds: float) -> None:
        self._ping.delay = _check_delay(seconds)

    def refuse_ping(self, sub_account_id: str, refuse: bool = True) -> None:
        """Make the ping of this environment refuse every key (or accept them again): an
        environment whose new keys never verify.

        Args:
            sub_account_id: The environment.
            refuse: True to refuse every key, False to apply the usual rule again.
        """
        refused = set(self._ping.refused)
        (refused.add if refuse else refused.discard)(sub_account_id)
        self._ping.refused = frozenset(refused)

    def ping_accepts(self, sub_account_id: str, api_key: str, api_secret: str) -> bool:
        """Whether the Admin API ping of this environment would accept this key now (the
        same rule the ping route applies, without a request): what a test's consumer
        holding a delivered key checks.

        Args:
            sub_account_id: The environment.
            api_key: The key's api_key.
            api_secret: The key's secret.

        Returns:
            True when the key is one of the environment's enabled keys, its secret matches,
            ``ping_delay`` has passed since its creation and the environment's ping does
            not refuse every key; False otherwise (an unknown environment included).
        """
        with self._accounts.lock:
            sub = self._accounts.get(sub_account_id)
            if sub is None:
                return False
            status, _ = ping(
                self._accounts,
                sub.cloud_name,
                (api_key, api_secret),
                delay=self._ping.delay,
                refused=self._ping.refused,
            )
        return status == 200

    # --- arranging and reading state

    def add_sub_account(
        self,
        sub_account_id: str,
        *,
        name: str | None = None,
        cloud_name: str | None = None,
        enabled: bool = True,
    ) -> None:
        """Add a sub-account holding ``keys_per_sub_account`` enabled keys; its ``name`` and
        ``cloud_name`` (shown by the product-environment listing) default to its id.

        Args:
            sub_account_id: The environment's id.
            name: Its name; its id when None.
            cloud_name: Its cloud name; its id when None.
            enabled: Whether the environment is enabled.
        """
        self._accounts.add_sub_account(
            sub_account_id, name=name, cloud_name=cloud_name, enabled=enabled
        )
        for _ in range(self.keys_per_sub_account):
            self.add_key(sub_account_id)

    def add_key(
        self,
        sub_account_id: str,
        *,
        name: str | None = None,
        enabled: bool = True,
        dedicated: bool = False,
        created_at: float | None = None,
    ) -> FakeKey:
        """Arrange a key (not counted in ``keys_created``); ``name=None`` picks ``key-N``;
        ``created_at`` (epoch seconds) backdates it, for tests of key-age policies.

        Args:
            sub_account_id: The environment to add it to.
            name: Its name; ``key-N`` when None.
            enabled: Whether it is enabled.
            dedicated: Whether it is dedicated for webhooks.
            created_at: Its creation time, in epoch seconds; now when None.

        Returns:
            A snapshot of the key, secret included.
        """
        return self._accounts.add_key(
            sub_account_id, name=name, enabled=enabled, dedicated=dedicated, created_at=created_at
        )

    def keys(self, sub_account_id: str) -> list[FakeKey]:
        """Snapshots of the sub-account's keys, in creation order.

        Args:
            sub_account_id: The environment.

        Returns:
            Its keys as the server holds them, secrets included.
        """
        return self._accounts.keys(sub_account_id)

    @property
    def keys_created(self) -> int:
        """Keys created through POST, including those whose response was then dropped."""
        return self._accounts.keys_created

    # --- what was received

    @property
    def journal(self) -> list[JournalEntry]:
        """Received requests, in the order their handling finished."""
        return self._journal.entries

    @journal.setter
    def journal(self, entries: list[JournalEntry]) -> None:
        self._journal.entries = entries

    @property
    def keep_journal(self) -> bool:
        """Whether ``journal`` receives entries (``stats`` counts either way)."""
        return self._journal.keep

    @keep_journal.setter
    def keep_journal(self, keep: bool) -> None:
        self._journal.keep = keep

    @property
    def stats(self) -> ServerStats:
        """Counters of what was received since start (or the last ``clear_journal``)."""
        return self._journal.stats()

    def clear_journal(self) -> None:
        """Forget received requests: empties ``journal`` and zeroes ``stats``."""
        self._journal.clear()

    # --- lifecycle

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, once started."""
        if self._url is None:
            raise RuntimeError("the server is not started")
        return self._url

    @property
    def port(self) -> int:
        """The port it listens on, once started."""
        return int(self.url.rpartition(":")[2])

    def client(self, **kwargs: Any) -> CldProvisioning:
        """A client of this package pointed at this server (``kwargs`` go to its constructor).

        Args:
            **kwargs: More arguments of ``CldProvisioning`` (``retry_config``, ``timeout``...).

        Returns:
            A client with this server's URL, account and credentials; close it when done.
        """
        # Imported here: the client module may import this one, and tests may not need a client.
        from .._client import CldProvisioning
        from .._config import Security

        return CldProvisioning(
            account_id=self.account_id,
            security=Security(
                provisioning_api_key=self.api_key, provisioning_api_secret=self.api_secret
            ),
            server_url=self.url,
            **kwargs,
        )

    async def start(self) -> None:
        """Listen on 127.0.0.1 (in the running event loop); ``url`` is known from then on.

        Raises:
            RuntimeError: The server is already started.
            OSError: The port could not be bound.
        """
        if self._runner is not None:
            raise RuntimeError("the server is already started")
        server = web.Server(self._app.handle, access_log=None)
        runner = web.ServerRunner(server, shutdown_timeout=2.0)
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
        """Stop listening and close open connections; a server not started is left as it is."""
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
        runs, for sync tests and fixtures.

        Returns:
            A context manager: the server, started, within the ``with`` block; stopped after.
        """
        with _loop_thread("cldprov-fake-server") as loop:
            asyncio.run_coroutine_threadsafe(self.start(), loop).result(timeout=_TIMEOUT)
            try:
                yield self
            finally:
                asyncio.run_coroutine_threadsafe(self.stop(), loop).result(timeout=_TIMEOUT)

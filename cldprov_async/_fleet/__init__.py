"""The fleet: one rate-limit budget shared through Redis by every process of an account.

``parse`` checks a ``rate_limit_url`` (one server, Sentinel or Cluster); ``connect`` builds
redis-py's asyncio client for it, or ``adopt`` wraps one the application built; keys follow
``budget_tag``/``fleet_key`` (one hash slot per budget); a ``FleetTarget`` says which (the
gate, the rotation lock and the key cache each take their client from it). ``make_gate`` builds the
``SharedGate`` on that client. redis-py (the optional extra ``cldprov-async[redis]``) is
imported only when a client is built.

Modules: ``_url`` (the URL), ``_connect`` (the client factory, the slot rule), ``_script``
(Lua), ``_store`` (one script run), ``_shared`` (the gate), ``_gap`` (out of reach and
back), ``_shares`` (the gap's rules, pure).

Imports: the in-process gate (the fallback) and what it imports; nothing above it.
"""

from __future__ import annotations

from ._connect import (
    REDIS_TIMEOUT,
    FleetRedis,
    FleetTarget,
    adopt,
    budget_tag,
    connect,
    fleet_key,
)
from ._shared import SharedGate
from ._store import BudgetStore
from ._url import ENV, EXTRA, FleetURL, parse

__all__ = [
    "ENV",
    "EXTRA",
    "REDIS_TIMEOUT",
    "FleetRedis",
    "FleetTarget",
    "FleetURL",
    "SharedGate",
    "adopt",
    "budget_tag",
    "connect",
    "fleet_key",
    "make_gate",
    "parse",
]


def make_gate(
    fleet: FleetRedis,
    *,
    prefix: str,
    host: str,
    account_id: str,
    bulk_reserve: float,
    lease_ttl: float,
) -> SharedGate:
    """A gate sharing the budget of (``prefix``, ``host``, ``account_id``) through Redis.

    Args:
        fleet: From :func:`connect` or :func:`adopt`.
        prefix: The URL's ``?prefix=`` ("" without one).
        host: The API's ``host:port``.
        account_id: The Cloudinary account.
        bulk_reserve: The fraction of each window bulk calls leave to normal ones.
        lease_ttl: Seconds a request in flight counts against the budget at most.

    Returns:
        The gate (its ``aclose`` closes ``fleet`` unless the application owns it).
    """
    store = BudgetStore(fleet, budget_tag(prefix, host, account_id), lease_ttl=lease_ttl)
    return SharedGate(store, bulk_reserve=bulk_reserve)

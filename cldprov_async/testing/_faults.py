"""Which requests fail, and how: the ``Faults`` policy and the ``FaultPlan`` that draws
from it (seeded, per sub-account, route and n-th request) after any scripted faults.

Imports only ``_types`` from the package (nothing from ``cldprov_async``).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Mapping

import attrs

from ._types import FAULT_KINDS, ROUTES, FaultKind, Route

NO_POLICY_DELAY = 0.05
"""How long a "delay" fault sleeps when no ``Faults`` policy is set (a scripted one)."""


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
class Faults:
    """Random faults: each accepted request of a route fails with probability ``routes[route]``
    (else ``rate``), with a kind drawn uniformly from ``kinds``; ``delay`` is the "delay" sleep.

    Attributes:
        rate: The probability, in [0, 1], that an accepted request is faulted.
        kinds: The fault kinds drawn from (all of them by default).
        routes: Per-route probabilities that replace ``rate`` for those routes.
        delay: Seconds a "delay" fault waits before answering.
    """

    rate: float = attrs.field(default=0.0, validator=_check_probability)
    kinds: tuple[FaultKind, ...] = attrs.field(default=FAULT_KINDS, converter=_to_kinds)
    routes: Mapping[Route, float] = attrs.field(factory=dict, converter=_to_routes)
    delay: float = attrs.field(default=NO_POLICY_DELAY, validator=attrs.validators.ge(0.0))


@attrs.define
class _Scripted:
    kind: FaultKind
    route: Route | None
    remaining: int


class FaultPlan:
    """The faults to come: scripted ones (``inject``) first, then random ones from ``faults``,
    which may be replaced at any time."""

    def __init__(self, faults: Faults | None, *, seed: int | None) -> None:
        self.faults = faults
        # Faults are drawn per (sub-account, route, n-th request), not from one stream, so a
        # seeded run repeats whatever order concurrent requests happen to arrive in.
        self._seed = random.getrandbits(64) if seed is None else seed
        self._draws: dict[tuple[str, Route], int] = {}
        self._scripted: list[_Scripted] = []
        self._lock = threading.Lock()

    @property
    def delay(self) -> float:
        """How long a "delay" fault sleeps."""
        faults = self.faults
        return NO_POLICY_DELAY if faults is None else faults.delay

    def inject(self, kind: FaultKind, *, route: Route | None, count: int) -> None:
        _to_kinds([kind])
        if route is not None:
            _to_routes({route: 0.0})
        if count < 1:
            raise ValueError("count must be >= 1")
        with self._lock:
            self._scripted.append(_Scripted(kind, route, count))

    def next_fault(self, route: Route, sub_account_id: str) -> FaultKind | None:
        """The fault for this accepted request, if any; each call uses up one draw."""
        if self._scripted:
            with self._lock:
                for index, item in enumerate(self._scripted):
                    if item.route is None or item.route == route:
                        item.remaining -= 1
                        if not item.remaining:
                            del self._scripted[index]
                        return item.kind
        faults = self.faults
        if faults is None:
            return None
        rate = faults.routes.get(route, faults.rate)
        if rate <= 0.0:
            return None
        with self._lock:
            n = self._draws.get((sub_account_id, route), 0)
            self._draws[sub_account_id, route] = n + 1
        rng = random.Random(f"{self._seed}:{sub_account_id}:{route}:{n}")
        if rng.random() >= rate:
            return None
        return faults.kinds[rng.randrange(len(faults.kinds))]

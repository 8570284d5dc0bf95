"""What the fake server received: ``JournalEntry``, ``ServerStats`` and the
``Journal`` that records both.

Imports only ``_types`` from the package (nothing from ``cldprov_async``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import attrs

from ._types import FaultKind, Route


@attrs.frozen
class JournalEntry:
    """One received request. ``status`` is None when the connection was dropped; ``body`` is the
    parsed JSON, else the raw text, else None (no body); ``route`` is None for unknown paths.

    Attributes:
        method: The HTTP method.
        path: The path, as received (percent-encoding included).
        query: The query parameters; a repeated one keeps its first value.
        headers: The request headers (``Authorization`` included: it is the fake's own).
        body: The parsed JSON body, else the raw text, else None.
        status: The status answered, or None when the connection was dropped.
        fault: The fault injected into this request, if any.
        time: When it arrived (the server's clock, epoch seconds).
        route: The route it matched, or None for an unknown path.
        query_pairs: Every query parameter in order, repeated ones included.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: Mapping[str, str]
    body: Any
    status: int | None
    fault: FaultKind | None
    time: float
    route: Route | None
    query_pairs: tuple[tuple[str, str], ...] = ()


@attrs.frozen
class ServerStats:
    """Counters since start (or the last ``FakeProvisioningServer.clear_journal``).

    Attributes:
        received: Requests handled, whatever their outcome.
        rate_limited: Requests rejected with 420/429.
        dropped: Requests whose connection was dropped (no answer).
        by_status: Requests answered, by status.
        faults: Faults injected, by kind.
    """

    received: int
    rate_limited: int
    dropped: int
    by_status: Mapping[int, int]
    faults: Mapping[str, int]


class Journal:
    """The received requests (when ``keep`` is true) and the counters, behind their own lock."""

    def __init__(self, *, keep: bool) -> None:
        self.entries: list[JournalEntry] = []
        self.keep = keep
        self._lock = threading.Lock()
        self._received = self._rate_limited = self._dropped = 0
        self._by_status: dict[int, int] = {}
        self._fault_counts: dict[str, int] = {}

    def record(self, entry: JournalEntry, *, rate_limited: bool) -> None:
        """Count one handled request, once its handling has finished."""
        status, fault = entry.status, entry.fault
        with self._lock:
            if self.keep:
                self.entries.append(entry)
            self._received += 1
            if status is None:
                self._dropped += 1
            else:
                self._by_status[status] = self._by_status.get(status, 0) + 1
            if fault is not None:
                self._fault_counts[fault] = self._fault_counts.get(fault, 0) + 1
            if rate_limited:
                self._rate_limited += 1

    def stats(self) -> ServerStats:
        with self._lock:
            return ServerStats(
                received=self._received,
                rate_limited=self._rate_limited,
                dropped=self._dropped,
                by_status=dict(self._by_status),
                faults=dict(self._fault_counts),
            )

    def clear(self) -> None:
        with self._lock:
            self.entries.clear()
            self._received = self._rate_limited = self._dropped = 0
            self._by_status.clear()
            self._fault_counts.clear()

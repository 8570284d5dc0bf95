"""How long to wait before trying again: after a rejection (420/429) or a failed attempt.

The server's own word comes first (``Retry-After``, else the window's reset); without one,
an exponential backoff with full jitter, so retrying clients spread out instead of
arriving together.

Imports: config and the header parsers only.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping

from ._config import RetryConfig
from ._snapshot import parse_rate_limit, retry_after_seconds

RATE_LIMITED = frozenset({420, 429})
#: Send a hair after the server's reset, not a hair before it.
RESET_MARGIN = 0.05


def backoff(config: RetryConfig, n: int, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(max, initial * 2**n)]."""
    return rng.uniform(0.0, min(config.backoff_max, config.backoff_initial * (2.0**n)))


def rejection_wait(
    headers: Mapping[str, str],
    n: int,
    retry: RetryConfig,
    rng: random.Random,
    now_wall: float | None = None,
) -> float:
    """Seconds a 420/429 closes the gate: ``Retry-After``, else the reset, else a backoff.

    ``now_wall`` is the wall clock the server's dates are read against (``time.time()``).
    """
    if now_wall is None:
        now_wall = time.time()
    wait = retry_after_seconds(headers, now_wall)
    if wait is None:
        seen = parse_rate_limit(headers)
        if seen is not None and seen.reset_at is not None:
            ahead = seen.reset_at.timestamp() - now_wall
            wait = ahead + RESET_MARGIN if ahead > 0 else None
    return backoff(retry, n, rng) if wait is None else wait

"""What every command shares: the program's name, the exit statuses, ``UsageError``, the
``Handler`` type of a command, and ``connect()`` (a client from the global options).

May import: the standard library and the rest of cldprov_async (client, config; the
testing clock only when ``CLDPROV_TEST_NOW`` asks for it). Nothing from the CLI: it sits at
the bottom, beside ``output``, so every CLI module may import it.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from .._client import CldProvisioning
from .._clock import Clock
from .._config import ACCOUNT_URL_ENV, Security, resolve_credentials

PROG = "cldprov-async"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
#: For tests only: the CLI's clock starts at this time (epoch seconds or an ISO date) and
#: runs on from there, so a run can be made on a fake server moved days ahead.
TEST_NOW_ENV = "CLDPROV_TEST_NOW"

#: A command: an async function of the parsed arguments that returns the exit status.
Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


class UsageError(ValueError):
    """A bad combination of arguments that argparse cannot express; exits 2."""


def connect(args: argparse.Namespace) -> CldProvisioning:
    """A client from the global options; credentials only from --account-url or the env."""
    url = args.account_url or os.environ.get(ACCOUNT_URL_ENV)
    if not url:
        raise UsageError(
            f"no credentials: set {ACCOUNT_URL_ENV}=account://KEY:SECRET@ACCOUNT_ID"
            " (or pass --account-url)"
        )
    account_id, security = resolve_credentials(None, None, env={ACCOUNT_URL_ENV: url})
    try:
        return _client(args, account_id, security)
    except ImportError as exc:  # --rate-limit-url without the redis extra
        raise UsageError(str(exc)) from None


def _test_clock() -> Clock | None:
    """The clock ``CLDPROV_TEST_NOW`` asks for (tests only), else None (the system's)."""
    raw = os.environ.get(TEST_NOW_ENV)
    if not raw:
        return None
    from ..testing import ManualClock  # only when a test asks for it

    try:
        start = float(raw)
    except ValueError:
        try:
            when = datetime.fromisoformat(raw)
        except ValueError:
            raise UsageError(f"{TEST_NOW_ENV} must be epoch seconds or an ISO date") from None
        start = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    return ManualClock(start, ticking=True)


def _client(args: argparse.Namespace, account_id: str, security: Security) -> CldProvisioning:
    return CldProvisioning(
        account_id,
        security,
        server_url=args.server_url,
        region=args.region,
        timeout=args.timeout,
        rate_limit_url=getattr(args, "rate_limit_url", None),  # else $CLDPROV_RATE_LIMIT_URL
        bulk_reserve=getattr(args, "bulk_reserve", 0.1),
        clock=_test_clock(),
    )

"""What every command shares: the program's name, the exit statuses, ``UsageError``, the
``Handler`` type of a command, and ``connect()`` (a client from the global options).

May import: the standard library and the rest of cldprov_async (client, config). Nothing
from the CLI: it sits at the bottom, beside ``output``, so every CLI module may import it.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Coroutine
from typing import Any

from .._client import CldProvisioning
from .._config import ACCOUNT_URL_ENV, Security, resolve_credentials

PROG = "cldprov-async"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

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


def _client(args: argparse.Namespace, account_id: str, security: Security) -> CldProvisioning:
    return CldProvisioning(
        account_id,
        security,
        server_url=args.server_url,
        region=args.region,
        timeout=args.timeout,
        rate_limit_url=getattr(args, "rate_limit_url", None),  # else $CLDPROV_RATE_LIMIT_URL
        bulk_reserve=getattr(args, "bulk_reserve", 0.1),
    )

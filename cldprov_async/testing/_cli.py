"""The standalone process, ``python -m cldprov_async.testing``: ``main`` and its arguments.

Imports ``_clock``, ``_faults``, ``_policy``, ``_server`` and ``_types`` from the package
(nothing from ``cldprov_async``); only ``__main__`` and ``__init__`` import it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Sequence
from datetime import UTC, datetime

from ._clock import ManualClock
from ._faults import Faults
from ._policy import RateLimitPolicy
from ._server import FakeProvisioningServer
from ._types import FAULT_KINDS


def _rate_limit_arg(text: str) -> tuple[int, float]:
    limit, _, window = text.partition("/")
    try:
        return int(limit), float(window or "1")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N/SECONDS, got {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cldprov_async.testing",
        description="Run the fake Provisioning API. Once listening it prints two lines:"
        " CLDPROV_FAKE_URL=http://127.0.0.1:PORT (the server URL) and"
        " CLOUDINARY_ACCOUNT_URL=account://KEY:SECRET@ACCOUNT_ID (its credentials), e.g. for"
        " `cldprov-async --server-url $CLDPROV_FAKE_URL audit`.",
    )
    parser.add_argument(
        "--port", type=int, default=0, help="the port to listen on (default: 0, a free one)"
    )
    parser.add_argument(
        "--account-id", default="fake-account", help="the account it answers for (other: 404)"
    )
    parser.add_argument("--api-key", default="fake-key", help="the provisioning key it accepts")
    parser.add_argument(
        "--api-secret", default="fake-secret", help="the provisioning secret it accepts"
    )
    parser.add_argument(
        "--sub-account",
        action="append",
        metavar="SUB",
        help="a product environment to start with (repeatable; default: sub-1)",
    )
    parser.add_argument(
        "--keys-per-sub-account",
        type=int,
        default=1,
        metavar="N",
        help="enabled keys each environment starts with (default: 1)",
    )
    parser.add_argument(
        "--rate-limit",
        type=_rate_limit_arg,
        metavar="N/SECONDS",
        help="N requests per fixed window of SECONDS (default: no limit)",
    )
    parser.add_argument(
        "--rate-limit-status",
        type=int,
        choices=(420, 429),
        default=420,
        help="the status past the limit (default: 420)",
    )
    parser.add_argument(
        "--retry-after",
        choices=("seconds", "date"),
        help="send Retry-After with a rejection, in seconds or as a date (default: none)",
    )
    parser.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        metavar="RATE",
        help="the share of accepted requests that meet a random fault, 0 to 1 (default: 0)",
    )
    parser.add_argument(
        "--fault-kind",
        action="append",
        choices=FAULT_KINDS,
        help="a kind of random fault (repeatable; default: all)",
    )
    parser.add_argument(
        "--seed", type=int, help="makes random faults, keys and secrets repeat from run to run"
    )
    parser.add_argument(
        "--ping-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="how long the Admin API ping refuses a new key (of the server's clock)",
    )
    parser.add_argument(
        "--ping-refuse", action="append", metavar="SUB", help="its ping refuses every key"
    )
    parser.add_argument(
        "--clock-start",
        type=_when,
        metavar="WHEN",
        help="start the server's clock here (epoch seconds or an ISO date); move it with"
        ' POST /_fake/clock {"advance": seconds} or {"set": epoch}',
    )
    parser.add_argument(
        "--clock-frozen", action="store_true", help="the clock moves only through /_fake/clock"
    )
    return parser


def _when(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected epoch seconds or an ISO date: {text!r}"
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


async def _serve_until_signal(server: FakeProvisioningServer) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        print(f"CLDPROV_FAKE_URL={server.url}", flush=True)
        print(f"CLOUDINARY_ACCOUNT_URL={account_url(server)}", flush=True)
        await stop.wait()


def account_url(server: FakeProvisioningServer) -> str:
    """The ``CLOUDINARY_ACCOUNT_URL`` holding the fake server's (fake) credentials."""
    return f"account://{server.api_key}:{server.api_secret}@{server.account_id}"


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT, then exit 0.

    Prints ``CLDPROV_FAKE_URL=http://127.0.0.1:PORT`` and the ``CLOUDINARY_ACCOUNT_URL``
    that reaches it once it listens. Options: ``--help``, or the command line reference.

    Args:
        argv: The arguments; ``sys.argv[1:]`` when None.

    Returns:
        The exit status, 0.
    """
    args = _parser().parse_args(argv)
    policy = None
    if args.rate_limit is not None:
        limit, window = args.rate_limit
        policy = RateLimitPolicy(
            limit=limit, window=window, status=args.rate_limit_status, retry_after=args.retry_after
        )
    faults = None
    if args.fault_rate:
        faults = Faults(rate=args.fault_rate, kinds=args.fault_kind or FAULT_KINDS)
    server = FakeProvisioningServer(
        account_id=args.account_id,
        api_key=args.api_key,
        api_secret=args.api_secret,
        sub_accounts=args.sub_account or ["sub-1"],
        rate_limit=policy,
        faults=faults,
        seed=args.seed,
        keys_per_sub_account=args.keys_per_sub_account,
        port=args.port,
        clock=ManualClock(args.clock_start, ticking=not args.clock_frozen),
        ping_delay=args.ping_delay,
        ping_refused=args.ping_refuse or (),
    )
    asyncio.run(_serve_until_signal(server))
    return 0
